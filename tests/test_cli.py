"""The `parcours` command, run as an operator would, against a fresh database of its own."""

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from campaigns.accounts import users
from campaigns.shared.models import Invitation, Learner, Membership, Organization, User
from config.cli import cli
from config.db import Database
from config.jobs import Job
from config.settings import Settings

ORG_ARGS = [
    "org",
    "create",
    "--name",
    "Collège Pix",
    "--uai",
    "0123456A",
    "--type",
    "SCO",
    "--admin-email",
    "a@b.fr",
    "--json",
]
UNREACHABLE = "postgresql+psycopg2://nobody@127.0.0.1:1/nothing"


@pytest.fixture
def database_url(scratch_databases):
    url = scratch_databases.new("cli")
    result = run(url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    return url


def run(database_url, *args, **environ):
    runner = CliRunner()
    env = {"DATABASE_URL": database_url, "PARCOURS_ENV": "development"}
    env.update(environ)
    return runner.invoke(cli, list(args), env=env, catch_exceptions=False)


def count(database_url, model):
    database = Database(Settings(database_url=database_url))
    try:
        with database.session() as session:
            return session.scalar(select(func.count()).select_from(model))
    finally:
        database.dispose()


def invitations(database_url):
    database = Database(Settings(database_url=database_url))
    try:
        with database.session() as session:
            return session.scalars(select(Invitation).order_by(Invitation.id)).all()
    finally:
        database.dispose()


def test_org_create_prints_the_organization_and_the_admin_invitation_as_json(database_url):
    result = run(database_url, *ORG_ARGS)
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["name"] == "Collège Pix"
    assert created["uai"] == "0123456A"
    assert created["type"] == "SCO"
    admin = created["admin"]
    assert admin["email"] == "a@b.fr" and admin["account_exists"] is False
    assert admin["invitation"]["role"] == "ADMIN" and admin["invitation"]["status"] == "pending"
    # Nobody got a role or an account: the invitation was e-mailed (queued for the worker).
    assert count(database_url, User) == 0
    assert count(database_url, Membership) == 0
    [invitation] = invitations(database_url)
    assert invitation.id == admin["invitation"]["id"] and invitation.email == "a@b.fr"
    assert count(database_url, Job) == 1


def test_the_same_org_twice_fails_in_one_line_and_duplicates_nothing(database_url):
    assert run(database_url, *ORG_ARGS).exit_code == 0
    again = run(database_url, *ORG_ARGS)
    assert again.exit_code != 0
    assert again.stdout == ""
    assert again.stderr.strip().count("\n") == 0
    assert "0123456A" in again.stderr and "already exists" in again.stderr
    assert count(database_url, Organization) == 1
    assert len(invitations(database_url)) == 1
    assert count(database_url, Job) == 1


def test_an_existing_account_gets_a_pending_admin_invitation_not_the_role(database_url):
    database = Database(Settings(database_url=database_url))
    with database.session() as session, session.begin():
        users.create_user(session, first_name="A", last_name="B", email="a@b.fr")
    database.dispose()
    second = run(
        database_url,
        *["org", "create", "--name", "Lycée Pix", "--uai", "0123457B"],
        *["--admin-email", "A@B.fr", "--json"],
    )
    assert second.exit_code == 0, second.output
    admin = json.loads(second.stdout)["admin"]
    assert admin["account_exists"] is True
    assert admin["invitation"]["status"] == "pending"
    assert "initial_password" not in admin
    assert count(database_url, User) == 1
    assert count(database_url, Membership) == 0


def test_invite_admin_renews_an_expired_first_admin_invitation(database_url):
    assert run(database_url, *ORG_ARGS).exit_code == 0
    [first] = invitations(database_url)
    database = Database(Settings(database_url=database_url))
    with database.session() as session, session.begin():
        session.get(Invitation, first.id).expires_at = first.created_at  # expired
    database.dispose()
    renewed = run(
        database_url, "org", "invite-admin", "--org", "0123456a", "--email", "a@b.fr", "--json"
    )
    assert renewed.exit_code == 0, renewed.output
    result = json.loads(renewed.stdout)
    assert result["outcome"] == "renewed" and result["invitation"]["id"] == first.id
    [again] = invitations(database_url)
    assert again.expires_at > first.expires_at and again.token_hash != first.token_hash
    assert "token" not in renewed.stdout  # the link goes to the mailbox only
    # Only the newest link waits in the outbox (the first e-mail had not left).
    assert count(database_url, Job) == 1 and count(database_url, Membership) == 0
    unknown = run(database_url, "org", "invite-admin", "--org", "9999999Z", "--email", "a@b.fr")
    assert unknown.exit_code != 0 and "no organization" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "X", "--uai", "12AB", "--admin-email", "a@b.fr"], "invalid UAI"),
        (["--name", "X", "--type", "PRO", "--uai", "0123456A", "--admin-email", "a@b.fr"], "UAI"),
        (["--name", "X", "--admin-email", "not-an-email"], "e-mail"),
        (["--name", "   ", "--admin-email", "a@b.fr"], "name"),
        (["--name", "N" * 256, "--admin-email", "a@b.fr"], "255"),
        (["--name", "X", "--admin-email", "a" * 300 + "@b.fr"], "e-mail"),
    ],
)
def test_bad_input_is_refused_in_one_line(database_url, args, message):
    result = run(database_url, "org", "create", *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert count(database_url, Organization) == 0


def test_an_organization_without_uai_is_unique_by_name(database_url):
    args = [
        "org",
        "create",
        "--name",
        "Université Démo",
        "--type",
        "SUP",
        "--admin-email",
        "u@d.fr",
    ]
    assert run(database_url, *args).exit_code == 0
    assert run(database_url, *args).exit_code != 0
    assert count(database_url, Organization) == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"DATABASE_URL": UNREACHABLE}, "DATABASE_URL: cannot reach"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL: not a database URL"),
        (
            {"PARCOURS_ENV": "production", "PUBLIC_URL": "https://parcours.example.org"},
            "SECRET_KEY: production refuses",
        ),
    ],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve"], ["worker", "--once"]])
def test_bad_configuration_stops_in_one_line(database_url, environ, expected, command):
    result = run(database_url, *command, **environ)
    assert result.exit_code != 0
    assert expected in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_demo_seeds_once_and_prints_logins(database_url):
    first = run(database_url, "demo", "--no-serve", "--json")
    assert first.exit_code == 0, first.output
    seeded = json.loads(first.stdout)
    roles = [login["role"] for login in seeded["logins"]]
    assert roles.count("teacher") == 1 and roles.count("student") >= 3
    assert roles.count("district") == 1  # reaches /admin
    counts = [count(database_url, m) for m in (Organization, User, Learner, Membership)]

    second = run(database_url, "demo", "--no-serve", "--json")
    assert second.exit_code == 0, second.output
    assert [count(database_url, m) for m in (Organization, User, Learner, Membership)] == counts
    # Every run hands out fresh passwords: nothing known in advance opens a demo account.
    old = {x["login"]: x["password"] for x in seeded["logins"]}
    new = {x["login"]: x["password"] for x in json.loads(second.stdout)["logins"]}
    assert old.keys() == new.keys() and all(old[k] != new[k] for k in old)


def test_demo_refuses_production(database_url):
    result = run(
        database_url,
        "demo",
        "--no-serve",
        PARCOURS_ENV="production",
        SECRET_KEY="y" * 40,
        PUBLIC_URL="https://parcours.example.org",
        PARCOURS_ALLOW_SQLITE="1",
    )
    assert result.exit_code != 0
    # On PostgreSQL the production checks pass and the demo itself refuses; on SQLite likewise.
    assert "production" in result.stderr


def test_db_check_finds_models_and_migrations_in_agreement(database_url):
    result = run(database_url, "db", "check")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "environ", "expected"),
    [
        (["db", "upgrade", "--revision", "nope"], {}, "nope"),
        (["db", "upgrade"], {"DATABASE_URL": "sqlite:////proc/parcours/x.db"}, "DATABASE_URL"),
        (["jobs", "list", "--limit", "-1"], {}, "-1"),
    ],
)
def test_operator_mistakes_get_one_line(database_url, args, environ, expected):
    result = run(database_url, *args, **environ)
    assert result.exit_code != 0
    assert expected in result.stderr
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith(("Error", "Usage"))]
    assert errors, result.stderr


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    result = run(f"sqlite:///{junk}", "db", "upgrade")
    assert result.exit_code != 0
    assert result.stderr.strip().count("\n") == 0
    assert "DATABASE_URL" in result.stderr


def test_failed_jobs_can_be_listed_and_retried(database_url):
    from config.jobs import Job, JobStatus

    database = Database(Settings(database_url=database_url))
    with database.session() as session, session.begin():
        session.add_all(
            [
                Job(kind="x", payload={}, status=JobStatus.FAILED, attempts=3, dedupe_key="k"),
                Job(kind="x", payload={}, status=JobStatus.FAILED, attempts=3, dedupe_key="k"),
            ]
        )
    database.dispose()
    listed = run(database_url, "jobs", "list", "--status", "FAILED", "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 2
    retried = run(database_url, "jobs", "retry")
    assert retried.exit_code == 0, retried.output
    assert "1 job(s) queued again" in retried.stderr  # one per dedupe key


# -- learners import --------------------------------------------------------------------------


LEARNERS_CSV = (
    "Nom;Prénom;Date de naissance;Division;INE\r\n"
    "Martin;Léa;12/03/2010;3A;1234567890A\r\n"
    "Durand;Noé;05/01/2010;3B;\r\n"
)


def test_learners_import_prints_the_report_and_updates_on_reimport(database_url, tmp_path):
    created = json.loads(run(database_url, *ORG_ARGS).stdout)
    path = tmp_path / "eleves.csv"
    path.write_bytes(LEARNERS_CSV.encode("cp1252"))
    result = run(database_url, "learners", "import", "--org", "0123456a", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["organization"] == {"id": created["id"], "uai": "0123456A"}
    assert (report["created"], report["updated"], report["disabled"]) == (2, 0, 0)
    assert count(database_url, Learner) == 2

    path.write_text("Nom,Prénom,Date de naissance,Classe\nDurand,Noé,2010-01-05,4B\n")
    again = run(database_url, "learners", "import", "--org", str(created["id"]), str(path))
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "0 learner(s) added, 1 updated, 1 disabled, 0 unchanged"
    assert count(database_url, Learner) == 2


def test_a_bad_learner_file_fails_in_one_line_and_imports_nothing(database_url, tmp_path):
    assert run(database_url, *ORG_ARGS).exit_code == 0
    path = tmp_path / "eleves.csv"
    lines = [f"Nom{i};;31/02/2010;3A;" for i in range(5)]
    path.write_text("Nom;Prénom;Date de naissance;Division;INE\n" + "\n".join(lines) + "\n")
    result = run(database_url, "learners", "import", "--org", "0123456A", str(path), "--json")
    assert result.exit_code != 0
    assert result.stdout == ""
    message = result.stderr.strip()
    assert message.count("\n") == 0
    assert message.startswith("Error: 10 error(s) in the learner file, nothing imported:")
    assert "Ligne 2 : prénom manquant" in message and "(+7 more)" in message
    assert count(database_url, Learner) == 0


@pytest.mark.parametrize(
    ("org_ref", "expected"),
    [("9999", "no organization with id or UAI '9999'"), ("0999999Z", "no organization")],
)
def test_learners_import_needs_an_existing_school(database_url, tmp_path, org_ref, expected):
    assert run(database_url, *ORG_ARGS).exit_code == 0
    path = tmp_path / "eleves.csv"
    path.write_text(LEARNERS_CSV)
    result = run(database_url, "learners", "import", "--org", org_ref, str(path))
    assert result.exit_code != 0
    assert expected in result.stderr and result.stderr.strip().count("\n") == 0


def test_learners_import_refuses_organizations_that_are_not_schools(database_url, tmp_path):
    company = run(
        database_url,
        *["org", "create", "--name", "Entreprise", "--type", "PRO", "--admin-email", "p@b.fr"],
        "--json",
    )
    path = tmp_path / "eleves.csv"
    path.write_text(LEARNERS_CSV)
    org_id = str(json.loads(company.stdout)["id"])
    result = run(database_url, "learners", "import", "--org", org_id, str(path))
    assert result.exit_code != 0
    assert "SCO" in result.stderr and count(database_url, Learner) == 0


# -- parcours admins ------------------------------------------------------------------------------


def _account(database_url, email, *, proven=True):
    from config.db import utcnow

    database = Database(Settings(database_url=database_url))
    with database.session() as session, session.begin():
        user = users.create_user(session, first_name="Dominique", last_name="D", email=email)
        if proven:
            user.email_verified_at = utcnow()
    database.dispose()


def _audit(database_url):
    from campaigns.shared.models import AuditEntry

    database = Database(Settings(database_url=database_url))
    try:
        with database.session() as session:
            rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
            return [(e.action, e.actor_user_id, e.actor_label, e.object_label) for e in rows]
    finally:
        database.dispose()


def test_admins_grant_list_and_revoke(database_url):
    _account(database_url, "one@example.org")
    _account(database_url, "two@example.org")
    granted = run(database_url, "admins", "grant", "One@Example.org", "--json")
    assert granted.exit_code == 0, granted.output
    assert json.loads(granted.stdout)["outcome"] == "granted"
    again = run(database_url, "admins", "grant", "one@example.org", "--json")
    assert json.loads(again.stdout)["outcome"] == "already_admin"
    assert run(database_url, "admins", "grant", "two@example.org").exit_code == 0
    listed = json.loads(run(database_url, "admins", "list", "--json").stdout)
    assert [row["email"] for row in listed] == ["one@example.org", "two@example.org"]
    revoked = run(database_url, "admins", "revoke", "one@example.org", "--json")
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout)["outcome"] == "revoked"
    assert [
        r["email"] for r in json.loads(run(database_url, "admins", "list", "--json").stdout)
    ] == ["two@example.org"]
    # Every change is in the audit log, by the command line; "already" changed nothing.
    assert [(action, actor, label) for action, actor, label, _ in _audit(database_url)] == [
        ("instance_admin.grant", None, "command line"),
        ("instance_admin.grant", None, "command line"),
        ("instance_admin.revoke", None, "command line"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grant", "nobody@example.org"], "no account with the e-mail address nobody@example.org"),
        (["grant", "unproven@example.org"], "is not confirmed yet"),
        (["grant", "not an address"], "invalid e-mail address"),
        (["revoke", "nobody@example.org"], "no account"),
        (["revoke", "unproven@example.org"], "is not an instance administrator"),
        (["revoke", "one@example.org"], "the last instance administrator cannot be revoked"),
    ],
)
def test_admins_bad_input_is_refused_in_one_line(database_url, args, message):
    _account(database_url, "one@example.org")
    _account(database_url, "unproven@example.org", proven=False)
    assert run(database_url, "admins", "grant", "one@example.org").exit_code == 0
    result = run(database_url, "admins", *args, "--json")
    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert len(_audit(database_url)) == 1  # the first grant only
    listed = json.loads(run(database_url, "admins", "list", "--json").stdout)
    assert [row["email"] for row in listed] == ["one@example.org"]


def test_org_commands_write_the_audit_log(database_url):
    assert run(database_url, *ORG_ARGS).exit_code == 0
    assert (
        run(database_url, "org", "invite-admin", "--org", "0123456A", "--email", "c@d.fr").exit_code
        == 0
    )
    assert [(a, actor, label) for a, actor, label, _ in _audit(database_url)] == [
        ("organization.create", None, "command line"),
        ("organization.invite_admin", None, "command line"),
    ]
