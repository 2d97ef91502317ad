"""The application as a browser, a load balancer or an LMS iframe sees it."""

import socket

import pytest
from flask import Flask

from config.app import create_app
from config.db import Database
from config.security import frameable
from config.settings import Settings
from lti_tool.models import LtiPlatform
from tests.conftest import TEST_SECRET


def test_healthz_reports_the_database_and_schema(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["database"] == "ok"
    assert response.json["schema"] == "up to date"


def test_healthz_answers_503_when_the_database_is_down():
    settings = Settings(
        database_url="postgresql+psycopg2://nobody@127.0.0.1:1/nothing",
        secret_key=TEST_SECRET,
        testing=True,
    )
    app = create_app(settings)  # building the app touches no database
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "error", "database": "unreachable", "version": "0.1.0"}


def test_pages_are_french_first(client):
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="fr">' in page
    assert "évaluer les compétences numériques" in page


def test_english_is_available_and_remembered(client):
    assert "assessing digital skills" in client.get("/?lang=en").get_data(as_text=True)
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Sign in" in page


def test_the_browser_language_is_followed(client):
    page = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert "assessing digital skills" in page


def test_every_english_message_is_translated(app):
    from babel.messages.pofile import read_po

    from config.i18n import TRANSLATIONS

    with (TRANSLATIONS / "en/LC_MESSAGES/messages.po").open("rb") as po:
        catalog = read_po(po)
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []
    assert (TRANSLATIONS / "en/LC_MESSAGES/messages.mo").exists(), "run `make install`"


def test_unknown_pages_get_a_french_404_page(client):
    response = client.get("/nulle-part")
    assert response.status_code == 404
    assert "Cette page n’existe pas." in response.get_data(as_text=True)


def test_pages_refuse_to_be_framed_by_default(client):
    response = client.get("/")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain http in development


@pytest.fixture
def framed_app(settings, bound_database, db_session):
    app = create_app(settings, database=bound_database)

    @app.get("/embedded")
    @frameable
    def embedded():
        return "inside the LMS"

    return app


def test_frameable_pages_may_be_framed_by_registered_platforms_only(framed_app, db_session):
    from campaigns.models import Organization, OrganizationType

    organization = Organization(name="Lycée", type=OrganizationType.SCO, uai="0000001A")
    db_session.add(organization)
    db_session.flush()
    db_session.add(
        LtiPlatform(
            organization_id=organization.id,
            issuer="https://moodle.lycee.example",
            client_id="abc",
            auth_login_url="https://moodle.lycee.example/mod/lti/auth.php",
            auth_token_url="https://moodle.lycee.example/mod/lti/token.php",
            key_set_url="https://moodle.lycee.example/mod/lti/certs.php",
            frame_origins="https://lycee.instructure.example",
        )
    )
    db_session.commit()

    response = framed_app.test_client().get("/embedded")
    csp = response.headers["Content-Security-Policy"]
    assert (
        "frame-ancestors 'self' https://lycee.instructure.example https://moodle.lycee.example"
        in csp
    )
    assert "X-Frame-Options" not in response.headers
    # Everything else still refuses framing.
    assert (
        "frame-ancestors 'none'"
        in framed_app.test_client().get("/").headers["Content-Security-Policy"]
    )


def test_https_deployments_get_hsts_and_iframe_ready_cookies(bound_database):
    settings = Settings(
        database_url="sqlite://",
        secret_key=TEST_SECRET,
        public_url="https://parcours.example.org",
        testing=True,
    )
    app: Flask = create_app(settings, database=bound_database)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "None"
    response = app.test_client().get("/", base_url="https://parcours.example.org")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_request_id_is_echoed_or_assigned(client):
    assert client.get("/", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    generated = client.get("/", headers={"X-Request-Id": "bad id; <script>"}).headers[
        "X-Request-Id"
    ]
    assert len(generated) == 32


def test_oversized_requests_are_refused(client):
    response = client.post("/connexion", data={"login": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413


def test_creating_the_app_does_not_connect(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("create_app opened a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    settings = Settings(
        database_url="postgresql+psycopg2://u@127.0.0.1:5432/none", secret_key=TEST_SECRET
    )
    create_app(settings, database=Database(settings))


def test_tests_cannot_reach_the_network():
    with pytest.raises(ConnectionRefusedError, match="network"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
