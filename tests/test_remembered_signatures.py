"""Session cookies whose check a process remembers, and CSRF tokens signed with a signing object
built once (config/security.py), are trusted exactly as far as Flask and Flask-WTF trust them:
no further in time, to no one else, with no key but the current ones; and nobody fills the
memory with copies of a valid cookie."""

import time

import pytest
from flask import request

from campaigns.accounts import users
from campaigns.shared.models import OrganizationType
from config import security
from tests.conftest import csrf_token
from tests.factories import organization_with_admin

PASSWORD = "Correct-Horse-9"
COOKIE = "parcours_session"


@pytest.fixture
def teacher(db_session):
    created = organization_with_admin(
        db_session,
        name="Collège Jean Moulin",
        type=OrganizationType.SCO,
        uai="0750001A",
        admin_email="prof@college.example",
    )
    users.set_password(db_session, created.admin, PASSWORD)
    db_session.commit()
    return created.admin


def _signed_in(client):
    token = csrf_token(client, "/connexion")
    form = {"login": "prof@college.example", "password": PASSWORD, "csrf_token": token}
    assert client.post("/connexion", data=form).status_code == 302
    assert client.get("/mon-compte").status_code == 200  # the cookie is remembered now
    return client.get_cookie(COOKIE).value


def test_a_remembered_cookie_still_ends_with_the_session_lifetime(
    app, client, teacher, monkeypatch
):
    _signed_in(client)
    lifetime = app.permanent_session_lifetime.total_seconds()
    later = int(time.time() + lifetime + 5)
    monkeypatch.setattr(security, "_now", lambda: later)
    # The server-side session is still valid in the database: only the cookie's age refuses it.
    assert client.get("/mon-compte").status_code == 302


def test_an_altered_cookie_signs_nobody_in_beside_the_remembered_one(client, teacher):
    genuine = _signed_in(client)
    head, _, signature = genuine.rpartition(".")
    altered = f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    client.set_cookie(COOKIE, altered)
    assert client.get("/mon-compte").status_code == 302
    client.set_cookie(COOKIE, genuine)
    assert client.get("/mon-compte").status_code == 200


def test_a_session_holding_a_list_is_read_afresh_for_every_request(app):
    serializer = app.session_interface.get_signing_serializer(app)
    cookie = serializer.dumps({"_flashes": [["info", "Enregistré"]], "lang": "fr"})
    opened = []
    for _ in range(2):
        with app.test_request_context(headers={"Cookie": f"{COOKIE}={cookie}"}):
            opened.append(app.session_interface.open_session(app, request))
    opened[0]["_flashes"].append(["error", "changed by the first request"])
    assert opened[1]["_flashes"] == [["info", "Enregistré"]]
    flat = serializer.dumps({"lang": "en"})
    with app.test_request_context(headers={"Cookie": f"{COOKIE}={flat}"}):
        first = app.session_interface.open_session(app, request)
        first["lang"] = "fr"
        assert app.session_interface.open_session(app, request) == {"lang": "en"}


def test_a_csrf_token_is_refused_in_another_session(app, teacher):
    alice, mallory = app.test_client(), app.test_client()
    token = csrf_token(alice, "/connexion")
    wrong = {"login": "prof@college.example", "password": "Nope-1234", "csrf_token": token}
    assert alice.post("/connexion", data=wrong).status_code == 401  # the token passed
    assert alice.post("/connexion", data=wrong).status_code == 401
    csrf_token(mallory, "/connexion")  # a session with a raw token of its own
    assert mallory.post("/connexion", data=wrong).status_code == 400


def test_a_csrf_token_still_needs_a_same_site_referrer_over_https(app, teacher):
    client = app.test_client()
    https = {"base_url": "https://127.0.0.1"}
    page = client.get("/connexion", **https).get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {"login": "prof@college.example", "password": "Nope-1234", "csrf_token": token}
    same_site = {"Referer": "https://127.0.0.1/connexion"}
    assert client.post("/connexion", data=form, headers=same_site, **https).status_code == 401
    assert client.post("/connexion", data=form, **https).status_code == 400  # no referrer
    elsewhere = {"Referer": "https://evil.example/connexion"}
    assert client.post("/connexion", data=form, headers=elsewhere, **https).status_code == 400


def _remembered(app):
    return app.extensions["parcours.session_signing"].opened.cache_info().currsize


def test_copies_of_a_valid_cookie_padded_with_ignored_characters_are_never_remembered(
    app, client, teacher
):
    genuine = _signed_in(client)
    remembered = _remembered(app)
    for n in range(1, 6):  # base64 decoding skips these: Flask accepts such a cookie as it is
        client.set_cookie(COOKIE, genuine + "~" * 4 * n)
        assert client.get("/mon-compte").status_code == 200
    assert _remembered(app) == remembered


def test_a_cookie_of_a_retired_key_is_refused_though_it_was_remembered(app, client, teacher):
    genuine = _signed_in(client)
    old_key = app.secret_key
    app.secret_key = "another-key-" + "x" * 40
    app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    assert client.get("/mon-compte").status_code == 200  # still signed with a fallback key
    app.config["SECRET_KEY_FALLBACKS"] = []
    client.set_cookie(COOKIE, genuine)
    assert client.get("/mon-compte").status_code == 302
