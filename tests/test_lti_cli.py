"""`parcours lti …`, run as an operator would, against a fresh database of its own."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.shared.models import AuditEntry, Organization, OrganizationType
from config.cli import cli
from config.db import Database, utcnow
from config.settings import Settings
from lti_tool import keys
from lti_tool.models import LtiDeployment, LtiPlatform, LtiToolKey

MOODLE = "https://moodle.lycee.example"
PLATFORM_ARGS = [
    "lti",
    "add-platform",
    "--org",
    "0750201a",
    "--issuer",
    MOODLE,
    "--client-id",
    "parcours-client",
    "--deployment-id",
    "1",
    "--auth-login-url",
    f"{MOODLE}/mod/lti/auth.php",
    "--auth-token-url",
    f"{MOODLE}/mod/lti/token.php",
    "--key-set-url",
    f"{MOODLE}/mod/lti/certs.php",
]


@pytest.fixture
def database_url(scratch_databases):
    url = scratch_databases.new("lticli")
    result = run(url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    with session_of(url) as session, session.begin():
        session.add_all(
            [
                Organization(name="Lycée Hugo", type=OrganizationType.SCO, uai="0750201A"),
                Organization(name="Collège Sand", type=OrganizationType.SCO, uai="0750202B"),
                Organization(
                    name="Ancien lycée",
                    type=OrganizationType.SCO,
                    uai="0750203C",
                    archived_at=utcnow(),
                ),
            ]
        )
    return url


@contextmanager
def session_of(url: str) -> Iterator[Session]:
    """A session on the command's database (disposed of afterwards)."""
    database = Database(Settings(database_url=url))
    try:
        with database.session() as session:
            yield session
    finally:
        database.dispose()


def run(database_url, *args):
    runner = CliRunner()
    env = {"DATABASE_URL": database_url, "PARCOURS_ENV": "development"}
    return runner.invoke(cli, list(args), env=env, catch_exceptions=False)


def audit(database_url) -> list[tuple[str, str, str | None, str]]:
    with session_of(database_url) as session:
        return [
            (e.action, e.object_type, e.object_id, e.actor_label)
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def one_line_failure(result, *words):
    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("Error: ")
    for word in words:
        assert word in result.stderr, result.stderr


# -- platforms ------------------------------------------------------------------------------------


def test_add_platform_prints_the_platform_and_the_urls_to_paste_and_is_logged(database_url):
    result = run(database_url, *PLATFORM_ARGS, "--name", "Moodle du lycée", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["issuer"] == MOODLE and created["client_id"] == "parcours-client"
    assert created["name"] == "Moodle du lycée" and created["active"] is True
    assert created["match_learners"] is False
    [deployment] = created["deployments"]
    assert deployment["deployment_id"] == "1"
    assert deployment["organization"]["name"] == "Lycée Hugo"
    assert deployment["organization"]["uai"] == "0750201A"
    assert created["tool"] == {
        "login_url": "http://127.0.0.1:5000/lti/login",
        "launch_url": "http://127.0.0.1:5000/lti/launch",
        "jwks_url": "http://127.0.0.1:5000/lti/jwks.json",
        "deep_linking_url": "http://127.0.0.1:5000/lti/launch",
    }
    with session_of(database_url) as session:
        platform = session.get(LtiPlatform, created["id"])
        assert platform.is_active and platform.key_set_url == f"{MOODLE}/mod/lti/certs.php"
    assert audit(database_url) == [
        ("lti.platform.create", "lti_platform", str(created["id"]), "command line")
    ]
    # Without --json: the same, for a person.
    plain = run(
        database_url,
        *[a if a != "parcours-client" else "other-client" for a in PLATFORM_ARGS],
    )
    assert plain.exit_code == 0, plain.output
    assert "registered" in plain.stdout and "http://127.0.0.1:5000/lti/login" in plain.stdout


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"--org": "9999999Z"}, ["--org", "no organization", "9999999Z"]),
        ({"--org": "0750203C"}, ["--org", "archived"]),
        ({"--auth-login-url": "http://moodle.example/auth"}, ["--auth-login-url", "https"]),
        ({"--key-set-url": "certs.php"}, ["--key-set-url"]),
        ({"--issuer": "moodle"}, ["--issuer"]),
        ({"--client-id": "  "}, ["--client-id", "required"]),
        ({"--deployment-id": ""}, ["--deployment-id", "required"]),
    ],
)
def test_bad_input_fails_in_one_line_and_registers_nothing(database_url, change, words):
    args = list(PLATFORM_ARGS)
    for option, value in change.items():
        args[args.index(option) + 1] = value
    one_line_failure(run(database_url, *args, "--json"), *words)
    with session_of(database_url) as session:
        assert session.scalars(select(LtiPlatform)).all() == []
    assert audit(database_url) == []


def test_a_bad_frame_origin_is_named(database_url):
    result = run(database_url, *PLATFORM_ARGS, "--frame-origin", "https://*.example")
    one_line_failure(result, "--frame-origin")


def test_the_same_platform_twice_is_refused(database_url):
    assert run(database_url, *PLATFORM_ARGS).exit_code == 0
    one_line_failure(run(database_url, *PLATFORM_ARGS, "--json"), "already registered")
    with session_of(database_url) as session:
        assert len(session.scalars(select(LtiPlatform)).all()) == 1
    assert len(audit(database_url)) == 1


def test_add_deployment_maps_another_organization(database_url):
    created = json.loads(run(database_url, *PLATFORM_ARGS, "--json").stdout)
    base = ["lti", "add-deployment", "--platform", str(created["id"])]
    result = run(database_url, *base, "--deployment-id", "7", "--org", "0750202B", "--json")
    assert result.exit_code == 0, result.output
    platform = json.loads(result.stdout)
    assert [(d["deployment_id"], d["organization"]["name"]) for d in platform["deployments"]] == [
        ("1", "Lycée Hugo"),
        ("7", "Collège Sand"),
    ]
    assert [row[0] for row in audit(database_url)] == [
        "lti.platform.create",
        "lti.deployment.create",
    ]
    one_line_failure(
        run(database_url, *base, "--deployment-id", "7", "--org", "0750201A"),
        "--deployment-id",
        "already registered",
    )
    unknown = ["lti", "add-deployment", "--platform", "999", "--deployment-id", "8"]
    one_line_failure(
        run(database_url, *unknown, "--org", "0750201A"), "--platform", "no LTI platform"
    )
    one_line_failure(
        run(database_url, *base, "--deployment-id", "8", "--org", "0750203C"), "archived"
    )
    with session_of(database_url) as session:
        assert len(session.scalars(select(LtiDeployment)).all()) == 2
    assert len(audit(database_url)) == 2


def test_platforms_lists_them(database_url):
    empty = run(database_url, "lti", "platforms", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []
    run(database_url, *PLATFORM_ARGS)
    listed = json.loads(run(database_url, "lti", "platforms", "--json").stdout)
    assert [(p["issuer"], p["active"], p["last_launch_at"]) for p in listed] == [
        (MOODLE, True, None)
    ]
    assert listed[0]["deployments"][0]["organization"]["uai"] == "0750201A"
    plain = run(database_url, "lti", "platforms")
    assert plain.exit_code == 0 and MOODLE in plain.stdout and "never" in plain.stdout


def test_registration_url_is_made_for_an_organization(database_url):
    result = run(database_url, "lti", "registration-url", "--org", "0750202B", "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert made["url"].startswith("http://127.0.0.1:5000/lti/register?o=")
    assert made["organization"]["name"] == "Collège Sand" and made["valid_days"] == 7
    one_line_failure(run(database_url, "lti", "registration-url", "--org", "0750203C"), "archived")


# -- keys -----------------------------------------------------------------------------------------


def test_keys_rotate_publishes_the_new_key_and_the_one_it_replaces(database_url):
    assert json.loads(run(database_url, "lti", "keys", "list", "--json").stdout) == []
    first = run(database_url, "lti", "keys", "rotate", "--json")
    assert first.exit_code == 0, first.output
    first_kid = json.loads(first.stdout)["kid"]
    second = run(database_url, "lti", "keys", "rotate", "--json")
    rotated = json.loads(second.stdout)
    assert rotated["kid"] != first_kid
    published = {key["kid"]: key for key in rotated["published"]}
    assert set(published) == {rotated["kid"], first_kid}
    assert published[rotated["kid"]]["status"] == "signing"
    assert published[rotated["kid"]]["retires_at"] is None
    old = published[first_kid]
    assert old["status"] == "published"
    superseded = dt.datetime.fromisoformat(old["superseded_at"])
    assert dt.datetime.fromisoformat(old["retires_at"]) == superseded + keys.OVERLAP
    with session_of(database_url) as session:
        assert {k["kid"] for k in keys.jwks(session)["keys"]} == set(published)
        assert len(session.scalars(select(LtiToolKey)).all()) == 2
    assert [row[:2] for row in audit(database_url)] == [
        ("lti.keys.rotate", "lti_tool_key"),
        ("lti.keys.rotate", "lti_tool_key"),
    ]
    listed = json.loads(run(database_url, "lti", "keys", "list", "--json").stdout)
    assert [(k["kid"], k["status"]) for k in listed] == [
        (rotated["kid"], "signing"),
        (first_kid, "published"),
    ]
    plain = run(database_url, "lti", "keys", "list")
    assert "signing" in plain.stdout and "published until" in plain.stdout


def test_add_platform_may_declare_the_platforms_names_reliable(database_url):
    result = run(database_url, *PLATFORM_ARGS, "--match-learners", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["match_learners"] is True
    with session_of(database_url) as session:
        assert session.get(LtiPlatform, created["id"]).match_learners is True
