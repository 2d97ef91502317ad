"""The application as a browser, a load balancer or an LMS iframe sees it."""

import socket

import pytest
from flask import Flask

from config.app import create_app
from config.db import Database
from config.security import forget_frame_origins, frameable
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


def test_the_language_switch_keeps_the_page_and_its_query(client):
    page = client.get("/connexion?next=/mon-compte").get_data(as_text=True)
    assert 'href="/connexion?next=/mon-compte&amp;lang=en"' in page


def test_templates_url_for_keeps_the_order_and_type_of_values(app):
    render = app.jinja_env.from_string
    with app.test_request_context("/orga/eleves"):
        first = render("{{ url_for('orga_learners.index', q='a', page=2) }}").render()
        swapped = render("{{ url_for('orga_learners.index', page=2, q='a') }}").render()
        by_flag = render("{{ url_for('orga_learners.index', page=True) }}").render()
        by_number = render("{{ url_for('orga_learners.index', page=1) }}").render()
    assert first.endswith("?q=a&amp;page=2")
    assert swapped.endswith("?page=2&amp;q=a")
    assert (by_flag, by_number) == ("/orga/eleves?page=True", "/orga/eleves?page=1")


def test_healthz_says_when_the_schema_is_missing(scratch_databases):
    settings = Settings(database_url=scratch_databases.new("empty"), secret_key=TEST_SECRET)
    database = Database(settings)
    try:
        response = create_app(settings, database=database).test_client().get("/healthz")
    finally:
        database.dispose()
    assert response.status_code == 503
    assert response.json["database"] == "ok"
    assert response.json["schema"].startswith("missing")


def test_the_browser_language_is_followed(client):
    page = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert "assessing digital skills" in page


def test_every_message_in_the_code_has_an_english_translation():
    """Extract the messages from the code as `pybabel extract` does and look each one up."""
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    from config.i18n import TRANSLATIONS

    root = Path(__file__).resolve().parent.parent
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    found: set[str] = set()
    for package in ("config", "campaigns", "lti_tool", "sso"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            root / package,
            method_map,
            keywords={"_": None, "gettext": None, "_l": None, "ngettext": (1, 2)},
        ):
            found.add(message if isinstance(message, str) else message[0])
    with (TRANSLATIONS / "en/LC_MESSAGES/messages.po").open("rb") as po:
        catalog = read_po(po)
    translated = {
        m.id[0] if isinstance(m.id, tuple) else m.id
        for m in catalog
        if m.id and m.string and all(m.string if isinstance(m.string, tuple) else [m.string])
    }
    assert sorted(found - translated) == []
    # The compiled catalog that ships is the one the .po describes.
    with (TRANSLATIONS / "en/LC_MESSAGES/messages.mo").open("rb") as mo:
        compiled = read_mo(mo)

    def key(value):  # plural entries: tuples in the .po, lists in the .mo
        return tuple(value) if isinstance(value, list | tuple) else value

    assert {key(m.id): key(m.string) for m in compiled if m.id} == {
        key(m.id): key(m.string) for m in catalog if m.id and m.string
    }


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


def register_moodle(db_session, uai, **fields):
    """A school and its Moodle, registered as an LTI platform (committed)."""
    from campaigns.shared.models import Organization, OrganizationType

    organization = Organization(name="Lycée", type=OrganizationType.SCO, uai=uai)
    db_session.add(organization)
    db_session.flush()
    db_session.add(
        LtiPlatform(
            issuer="https://moodle.lycee.example",
            client_id="abc",
            auth_login_url="https://moodle.lycee.example/mod/lti/auth.php",
            auth_token_url="https://moodle.lycee.example/mod/lti/token.php",
            key_set_url="https://moodle.lycee.example/mod/lti/certs.php",
            **fields,
        )
    )
    db_session.commit()


def test_frameable_pages_may_be_framed_by_registered_platforms_only(framed_app, db_session):
    register_moodle(db_session, "0000001A", frame_origins="https://lycee.instructure.example")

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


def test_registered_origins_are_read_again_after_a_registration(framed_app, db_session):
    client = framed_app.test_client()
    assert (
        "frame-ancestors 'self';"
        in client.get("/embedded").headers["Content-Security-Policy"] + ";"
    )
    register_moodle(db_session, "0000003C")
    # Read at most every FRAME_ORIGINS_TTL seconds per process, at once after a registration.
    assert "moodle" not in client.get("/embedded").headers["Content-Security-Policy"]
    forget_frame_origins(framed_app)
    csp = client.get("/embedded").headers["Content-Security-Policy"]
    assert csp.endswith("frame-ancestors 'self' https://moodle.lycee.example")


@pytest.mark.parametrize(
    "hostile",
    [
        "https://a.example *",
        "https://a.example; script-src *",
        "https://user:pw@a.example",
        "https://*.example",
        "javascript:alert(1)",
        "https://a.example,https://b.example",
    ],
)
def test_registered_urls_cannot_smuggle_sources_into_the_csp(framed_app, db_session, hostile):
    from campaigns.shared.models import Organization, OrganizationType

    organization = Organization(name="Lycée", type=OrganizationType.SCO, uai="0000002B")
    db_session.add(organization)
    db_session.flush()
    db_session.add(
        LtiPlatform(
            issuer=hostile,
            client_id="abc",
            auth_login_url=hostile,
            auth_token_url="https://a.example/token",
            key_set_url="https://a.example/jwks",
            frame_origins=hostile,
        )
    )
    db_session.commit()
    csp = framed_app.test_client().get("/embedded").headers["Content-Security-Policy"]
    ancestors = csp.split("frame-ancestors", 1)[1]
    assert ancestors.strip() in ("'self'", "'self' https://a.example")


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
    assert app.config["SESSION_COOKIE_PARTITIONED"] is True
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


def test_creating_the_app_does_not_connect(settings):
    from sqlalchemy import event

    database = Database(settings)
    connections = []
    event.listen(database.engine, "connect", lambda *_: connections.append(1))
    create_app(settings, database=database)
    database.dispose()
    assert connections == []


def test_tests_cannot_reach_the_network():
    with pytest.raises(ConnectionRefusedError, match="network"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


def test_a_view_is_checked_once_for_being_a_coroutine(app, monkeypatch):
    """Flask asks `inspect` whether each view and hook is a coroutine at every request: the
    app asks once per function, and still refuses or wraps a coroutine each time."""
    import flask.app

    asked = []
    monkeypatch.setattr(
        flask.app, "iscoroutinefunction", lambda f: asked.append(f) or f.__name__ == "later"
    )

    def now():
        return "now"

    async def later():
        return "later"

    assert app.ensure_sync(now) is now
    assert app.ensure_sync(now) is now
    assert asked == [now]
    for _ in range(2):
        with pytest.raises(RuntimeError):  # Flask without its async extra
            app.ensure_sync(later)
    assert asked == [now, later, later]
