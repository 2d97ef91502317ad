"""`parcours saml …`, run as an operator would, against a fresh database of its own."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from campaigns.shared.models import Organization, OrganizationType
from sso.models import SamlIdentityProvider, SamlSpKey
from tests.saml_idp import FakeIdp
from tests.test_lti_cli import audit, one_line_failure, run, session_of


@pytest.fixture
def database_url(scratch_databases):
    url = scratch_databases.new("samlcli")
    result = run(url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    with session_of(url) as session, session.begin():
        session.add(Organization(name="Lycée Hugo", type=OrganizationType.SCO, uai="0750201A"))
    return url


@pytest.fixture
def metadata_file(tmp_path):
    path = tmp_path / "gar.xml"
    path.write_bytes(FakeIdp().metadata())
    return path


def test_add_idp_prints_what_the_idp_administrator_needs_and_is_logged(database_url, metadata_file):
    result = run(
        database_url, "saml", "add-idp", "--slug", "gar", "--metadata-file", str(metadata_file),
        "--org", "0750201a", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["slug"] == "gar" and created["entity_id"] == "https://idp.gar.example/idp"
    assert created["mapping"] == "gar" and created["allow_idp_initiated"] is False
    assert created["organizations"] == [
        {"id": created["organizations"][0]["id"], "name": "Lycée Hugo", "uai": "0750201A"}
    ]
    sp = created["sp"]
    assert (
        sp["entity_id"] == sp["metadata_url"] == "http://127.0.0.1:5000/sso/saml/gar/metadata.xml"
    )
    assert sp["acs_url"].endswith("/sso/saml/gar/acs")
    assert [a[:2] for a in audit(database_url)] == [("saml.idp.create", "saml_idp")]
    listed = json.loads(run(database_url, "saml", "idps", "--json").stdout)
    assert [i["slug"] for i in listed] == ["gar"]


def test_add_idp_refuses_bad_input_in_one_line(database_url, metadata_file, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>")
    args = ("saml", "add-idp", "--slug")
    one_line_failure(run(database_url, *args, "gar"), "exactly one")
    one_line_failure(
        run(database_url, *args, "gar", "--metadata-file", str(bad)), "--metadata-file", "readable"
    )
    one_line_failure(
        run(database_url, *args, "Bad Slug", "--metadata-file", str(metadata_file)), "--slug"
    )
    one_line_failure(
        run(database_url, *args, "gar", "--metadata-file", str(metadata_file), "--org", "nope"),
        "--org",
    )
    assert run(database_url, *args, "gar", "--metadata-file", str(metadata_file)).exit_code == 0
    one_line_failure(
        run(database_url, *args, "gar", "--metadata-file", str(metadata_file)), "--slug", "already"
    )
    one_line_failure(
        run(database_url, *args, "ent", "--metadata-url", "ftp://idp.example/m.xml"),
        "--metadata-url",
    )
    with session_of(database_url) as session:
        assert session.scalars(select(SamlIdentityProvider.slug)).all() == ["gar"]


def test_rotate_key_publishes_the_next_key_ahead_and_one_rollover_at_a_time(database_url):
    first = run(database_url, "saml", "rotate-key", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["signs_from"] > dt.datetime.now(dt.UTC).isoformat()
    one_line_failure(run(database_url, "saml", "rotate-key"), "under way", "--now")
    assert run(database_url, "saml", "rotate-key", "--now", "--json").exit_code == 0
    with session_of(database_url) as session:
        assert len(session.scalars(select(SamlSpKey)).all()) == 3  # the first one, made at use
    assert [a[0] for a in audit(database_url)] == ["saml.keys.rotate"] * 2
