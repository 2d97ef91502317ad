"""Signing in and out: CSRF, rate limits, session rotation, safe redirects; and the session
cookies whose check a process remembers, and CSRF tokens signed with a signing object built once
(config/security.py), trusted exactly as far as Flask and Flask-WTF trust them: no further in
time, to no one else, with no key but the current ones; and nobody fills the memory with copies
of a valid cookie."""

import time

import pytest
from flask import request
from sqlalchemy import select

from campaigns.accounts import users
from campaigns.shared.models import OrganizationType
from config import security
from config.db import utcnow
from tests.conftest import csrf_token, recorded_statements
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


def sign_in(client, login, password, next_url=None):
    data = {"login": login, "password": password, "csrf_token": csrf_token(client, "/connexion")}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/connexion", data=data)


def test_a_member_signs_in_and_sees_their_organization(client, teacher):
    response = sign_in(client, "PROF@college.example", PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/orga"  # members land in their panel
    page = client.get("/mon-compte").get_data(as_text=True)
    assert "Collège Jean Moulin (0750001A)" in page
    assert "Administrateur" in page


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(client, teacher):
    wrong = sign_in(client, "prof@college.example", "Nope-1234")
    unknown = sign_in(client, "nobody@college.example", PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "L’adresse e-mail, l’identifiant ou le mot de passe est incorrect." in (
            response.get_data(as_text=True)
        )
    assert client.get("/mon-compte").status_code == 302


def test_posting_without_the_csrf_token_is_refused(client, teacher):
    response = client.post(
        "/connexion", data={"login": "prof@college.example", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert client.get("/mon-compte").status_code == 302


def test_guessing_a_password_is_rate_limited(client, teacher):
    for _ in range(10):
        assert sign_in(client, "prof@college.example", "Wrong-0000").status_code == 401
    blocked = sign_in(client, "prof@college.example", PASSWORD)
    assert blocked.status_code == 429
    assert "Trop de tentatives" in blocked.get_data(as_text=True)


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"],
)
def test_redirects_after_sign_in_stay_on_the_site(client, teacher, target):
    response = sign_in(client, "prof@college.example", PASSWORD, next_url=target)
    assert response.headers["Location"] in ("/mon-compte", "/orga")  # never elsewhere


def test_a_local_next_page_is_followed(client, teacher):
    response = sign_in(client, "prof@college.example", PASSWORD, next_url="/mon-compte?x=1")
    assert response.headers["Location"] == "/mon-compte?x=1"


def test_protected_pages_send_visitors_to_sign_in(client):
    response = client.get("/mon-compte")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/connexion?next=/mon-compte")


def test_the_session_is_rotated_at_sign_in_and_cleared_at_sign_out(client, teacher):
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    sign_in(client, "prof@college.example", PASSWORD)
    with client.session_transaction() as session:
        assert "planted" not in session
    token = csrf_token(client, "/mon-compte")
    assert client.post("/deconnexion", data={"csrf_token": token}).status_code == 302
    assert client.get("/mon-compte").status_code == 302


def test_sign_out_needs_a_post_with_csrf(client, teacher):
    sign_in(client, "prof@college.example", PASSWORD)
    assert client.get("/deconnexion").status_code == 405
    assert client.post("/deconnexion").status_code == 400
    assert client.get("/mon-compte").status_code == 200


def test_passwords_are_stored_as_argon2id_hashes(db_session, teacher):
    method = teacher.authentication_methods[0]
    assert method.password_hash.startswith("$argon2id$")
    assert PASSWORD not in method.password_hash


def test_failures_from_one_address_are_limited_across_logins(client, teacher, app):
    from campaigns.accounts.views import SIGN_IN_PER_ADDRESS

    for n in range(SIGN_IN_PER_ADDRESS.max_hits):
        assert sign_in(client, f"guess{n}@college.example", "Wrong-0000").status_code == 401
    assert sign_in(client, "prof@college.example", PASSWORD).status_code == 429


def test_successful_sign_ins_do_not_use_up_the_address_allowance(client, teacher):
    for _ in range(12):
        assert sign_in(client, "prof@college.example", PASSWORD).status_code == 302
        client.post("/deconnexion", data={"csrf_token": csrf_token(client, "/mon-compte")})


def test_a_temporary_password_must_be_changed_at_first_sign_in(app, client, db_session, teacher):
    temporary = "Provisoire-2026"
    users.set_password(db_session, teacher, temporary, must_change=True)
    db_session.commit()
    first = sign_in(client, "prof@college.example", temporary)
    assert first.headers["Location"].startswith("/mon-compte/mot-de-passe")
    form = csrf_token(client, "/mon-compte/mot-de-passe")
    weak = client.post(
        "/mon-compte/mot-de-passe",
        data={"csrf_token": form, "current_password": temporary, "new_password": "short"},
    )
    assert weak.status_code == 400
    # What is wrong with this one, not the rules again (the field's help lists them).
    assert "Ce mot de passe n’a que 5 caractères" in weak.get_data(as_text=True)
    changed = client.post(
        "/mon-compte/mot-de-passe",
        data={
            "csrf_token": form,
            "current_password": temporary,
            "new_password": "Mon-Vrai-Mot-2026",
        },
    )
    assert changed.status_code == 302
    assert not users.must_change_password(db_session, teacher)
    assert sign_in(app.test_client(), "prof@college.example", temporary).status_code == 401


def test_changing_the_password_signs_out_every_other_session(app, teacher):
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, "prof@college.example", PASSWORD)
    sign_in(phone, "prof@college.example", PASSWORD)
    laptop.post(
        "/mon-compte/mot-de-passe",
        data={
            "csrf_token": csrf_token(laptop, "/mon-compte/mot-de-passe"),
            "current_password": PASSWORD,
            "new_password": "Another-Horse-7",
        },
    )
    assert laptop.get("/mon-compte").status_code == 200
    assert phone.get("/mon-compte").status_code == 302


def test_the_password_change_refuses_a_wrong_current_password(client, teacher):
    sign_in(client, "prof@college.example", PASSWORD)
    response = client.post(
        "/mon-compte/mot-de-passe",
        data={
            "csrf_token": csrf_token(client, "/mon-compte/mot-de-passe"),
            "current_password": "Not-The-One-1",
            "new_password": "Another-Horse-7",
        },
    )
    assert response.status_code == 400
    assert "Le mot de passe actuel est incorrect." in response.get_data(as_text=True)


def test_the_signed_in_users_language_is_used(client, teacher, db_session):
    teacher.locale = "en"
    db_session.commit()
    sign_in(client, "prof@college.example", PASSWORD)
    assert '<html lang="en">' in client.get("/mon-compte").get_data(as_text=True)


# -- where people land ----------------------------------------------------------------------------


@pytest.fixture
def pupil(db_session):
    created = users.create_user(
        db_session,
        first_name="Léa",
        last_name="Élève",
        email="lea@college.example",
        password=PASSWORD,
    )
    db_session.commit()
    return created


def test_a_student_who_signs_in_lands_on_their_campaigns(client, pupil):
    response = sign_in(client, "lea@college.example", PASSWORD)
    assert response.headers["Location"] == "/mes-parcours"
    # "Mon compte" speaks to a student of their campaigns, not of organizations.
    account = client.get("/mon-compte").get_data(as_text=True)
    assert "membre d’aucune organisation" not in account
    assert '<a class="button" href="/mes-parcours">Mes parcours</a>' in account
    # Coming back to the sign-in page once signed in leads to the same place.
    assert client.get("/connexion").headers["Location"] == "/mes-parcours"


def test_a_safe_next_page_wins_over_the_landing_page(client, pupil, teacher):
    assert (
        sign_in(client, "lea@college.example", PASSWORD, "/mon-profil").headers["Location"]
        == "/mon-profil"
    )
    client.post("/deconnexion", data={"csrf_token": csrf_token(client, "/mon-compte")})
    assert (
        sign_in(client, "prof@college.example", PASSWORD, "/mon-compte").headers["Location"]
        == "/mon-compte"
    )
    client.post("/deconnexion", data={"csrf_token": csrf_token(client, "/mon-compte")})
    # Off the site: the member's own landing page.
    assert (
        sign_in(client, "prof@college.example", PASSWORD, "//evil.example/").headers["Location"]
        == "/orga"
    )


def test_members_see_their_panel_in_the_header_and_students_do_not(client, teacher, pupil):
    sign_in(client, "prof@college.example", PASSWORD)
    page = client.get("/mon-profil").get_data(as_text=True)
    assert '<li><a href="/orga">Espace Orga</a></li>' in page
    client.post("/deconnexion", data={"csrf_token": csrf_token(client, "/mon-compte")})
    sign_in(client, "lea@college.example", PASSWORD)
    page = client.get("/mon-profil").get_data(as_text=True)
    assert "Espace Orga" not in page and 'href="/orga"' not in page


def test_the_header_link_to_the_panel_costs_no_query_of_its_own(app, client, teacher, pupil):
    """Membership is read with the signed-in user (an EXISTS in the same statement): a member's
    page costs exactly the statements of the same page for a student."""
    engine = app.extensions["parcours.database"].engine

    def statements_of(email):
        sign_in(client, email, PASSWORD)
        with recorded_statements(engine) as statements:
            page = client.get("/mon-profil").get_data(as_text=True)
        client.post("/deconnexion", data={"csrf_token": csrf_token(client, "/mon-compte")})
        return page, statements

    statements_of("lea@college.example")  # warm the per-process caches (framing origins…)
    page, member = statements_of("prof@college.example")
    assert "Espace Orga" in page
    page, student = statements_of("lea@college.example")
    assert "Espace Orga" not in page
    assert len(member) == len(student)


def test_a_member_of_an_archived_organization_has_no_panel_link(client, teacher, db_session):
    from campaigns.shared.models import Membership, Organization

    organization = db_session.scalars(
        select(Organization).join(Membership).where(Membership.user_id == teacher.id)
    ).one()
    organization.archived_at = utcnow()
    db_session.commit()
    sign_in(client, "prof@college.example", PASSWORD)
    assert "Espace Orga" not in client.get("/mon-profil").get_data(as_text=True)
    assert client.get("/").headers["Location"] == "/mes-parcours"


def test_the_home_page_sends_signed_in_people_where_they_work(client, teacher, pupil):
    anonymous = client.get("/")
    assert anonymous.status_code == 200
    assert 'href="/campagnes"' in anonymous.get_data(as_text=True)
    sign_in(client, "prof@college.example", PASSWORD)
    assert client.get("/").headers["Location"] == "/orga"
    client.post("/deconnexion", data={"csrf_token": csrf_token(client, "/mon-compte")})
    sign_in(client, "lea@college.example", PASSWORD)
    assert client.get("/").headers["Location"] == "/mes-parcours"


# -- signatures a process remembers (config/security.py) -------------------------------------


def _signed_in(client):
    assert sign_in(client, "prof@college.example", PASSWORD).status_code == 302
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
