"""Accounts you can trust: proven addresses before any role, no silent joins, temporary
passwords changed before anything else, sessions that really end, guessing limits that lock
nobody out, and a sign-up form that does not tell who has an account."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from campaigns.accounts import links, sessions, users
from campaigns.shared.models import (
    Invitation,
    Learner,
    Membership,
    MembershipRole,
    OrganizationType,
    User,
)
from config.jobs import Job
from tests.conftest import csrf_token
from tests.factories import organization_with_admin
from tests.journey_helpers import STUDENT_PASSWORD, assessment_campaign, school, student

ADMIN_PASSWORD = "Admin-Motdepasse-1"
ATTACKER_PASSWORD = "Attaquant-Mdp-1"
VICTIM_PASSWORD = "Victime-Motdepasse-2"
LINK = re.compile(r"http://127\.0\.0\.1:5000(/[^\s]+)")


def post(client, path, data=None, *, form_page="/campagnes"):
    return client.post(path, data={"csrf_token": csrf_token(client, form_page), **(data or {})})


def sign_in(client, login, password):
    return post(
        client, "/connexion", {"login": login, "password": password}, form_page="/connexion"
    )


def sign_up(client, email, password, *, next_url="/mes-parcours", first_name="Eve"):
    return post(
        client,
        "/inscription",
        {
            "first_name": first_name,
            "last_name": "Martin",
            "email": email,
            "password": password,
            "cgu": "on",
            "next": next_url,
        },
        form_page="/inscription",
    )


def mails(db_session, to=None):
    db_session.expire_all()
    jobs = db_session.scalars(select(Job).where(Job.kind == "mail.send").order_by(Job.id)).all()
    return [j.payload for j in jobs if to is None or j.payload["to"] == to]


def link_in(mail) -> str:
    match = LINK.search(mail["body"])
    assert match, mail["body"]
    return match.group(1)


def user_of(db_session, email) -> User:
    db_session.expire_all()
    return db_session.scalars(select(User).where(User.email == email)).one()


@pytest.fixture
def school_admin(db_session):
    founded = organization_with_admin(
        db_session,
        name="Collège Jean Jaurès",
        type=OrganizationType.SCO,
        uai="0750321K",
        admin_email="direction@jaures.example",
        password=ADMIN_PASSWORD,
    )
    founded.admin.cgu_accepted_at = founded.admin.created_at
    db_session.commit()
    return founded


# -- 1. account pre-hijacking ---------------------------------------------------------------------


def test_a_pre_registered_address_gets_no_role_when_the_school_adds_it(
    app, db_session, school_admin
):
    attacker = app.test_client()
    assert sign_up(attacker, "victime@jaures.example", ATTACKER_PASSWORD).status_code == 302

    admin = app.test_client()
    assert sign_in(admin, "direction@jaures.example", ADMIN_PASSWORD).status_code == 302
    added = post(
        admin,
        "/orga/equipe",
        {"email": "victime@jaures.example", "role": "ADMIN"},
        form_page="/orga/equipe",
    )
    assert added.status_code == 303
    victim_account = user_of(db_session, "victime@jaures.example")
    assert victim_account.email_verified_at is None
    # Nobody joined: an invitation waits for the owner of the address.
    assert (
        db_session.scalars(select(Membership).where(Membership.user_id == victim_account.id)).all()
        == []
    )
    assert attacker.get("/orga").status_code in (302, 403)
    [invitation_mail] = [
        m for m in mails(db_session, "victime@jaures.example") if "/invitation/" in m["body"]
    ]

    # The real owner takes the account back through "mot de passe oublié" (which ends the
    # attacker's session), then accepts the invitation.
    victim = app.test_client()
    post(
        victim,
        "/mot-de-passe-oublie",
        {"email": "victime@jaures.example"},
        form_page="/mot-de-passe-oublie",
    )
    reset_mail = [
        m
        for m in mails(db_session, "victime@jaures.example")
        if "/mot-de-passe-oublie/" in m["body"]
    ][-1]
    reset = link_in(reset_mail)
    assert (
        post(victim, reset, {"new_password": VICTIM_PASSWORD}, form_page=reset).status_code == 303
    )
    assert attacker.get("/mon-compte").status_code == 302  # signed out for good
    assert (
        sign_in(app.test_client(), "victime@jaures.example", ATTACKER_PASSWORD).status_code == 401
    )
    invitation = link_in(invitation_mail)
    assert post(victim, invitation, form_page=invitation).status_code == 303
    role = db_session.scalar(select(Membership.role).where(Membership.user_id == victim_account.id))
    assert role is MembershipRole.ADMIN


def test_an_invitation_link_admits_only_the_account_of_the_invited_address(
    app, db_session, school_admin
):
    admin = app.test_client()
    sign_in(admin, "direction@jaures.example", ADMIN_PASSWORD)
    post(
        admin,
        "/orga/equipe",
        {"email": "prof@jaures.example", "role": "ADMIN"},
        form_page="/orga/equipe",
    )
    invitation = link_in(mails(db_session, "prof@jaures.example")[-1])
    intruder = app.test_client()
    sign_up(intruder, "intrus@jaures.example", ATTACKER_PASSWORD)
    assert post(intruder, invitation, form_page=invitation).status_code == 403
    assert (
        db_session.scalars(
            select(Membership).join(User).where(User.email == "intrus@jaures.example")
        ).all()
        == []
    )


def test_signing_up_mails_a_single_use_confirmation_link(app, client, db_session):
    response = sign_up(client, "lea@example.org", STUDENT_PASSWORD, next_url="/mes-parcours")
    assert response.status_code == 302 and response.headers["Location"] == "/mes-parcours"
    page = client.get("/mon-compte").get_data(as_text=True)
    assert "à confirmer" in page  # the account works meanwhile
    [mail] = mails(db_session, "lea@example.org")
    assert mail["subject"] == "Confirmez votre adresse e-mail sur Parcours"
    path = link_in(mail)
    # Opened in a browser not signed in to the account, the link proves nothing: sign in first.
    other_browser = app.test_client()
    page = other_browser.get(path).get_data(as_text=True)
    assert "Je confirme mon adresse" not in page and "connectez-vous" in page
    assert post(other_browser, path, form_page="/connexion").status_code == 403
    assert user_of(db_session, "lea@example.org").email_verified_at is None
    # The account's own session confirms it (GET shows a button and changes nothing).
    assert "Je confirme mon adresse" in client.get(path).get_data(as_text=True)
    assert user_of(db_session, "lea@example.org").email_verified_at is None
    assert post(client, path, form_page=path).status_code == 303
    assert user_of(db_session, "lea@example.org").email_verified_at is not None
    assert "confirmée" in client.get("/mon-compte").get_data(as_text=True)
    again = client.get(path)
    assert again.status_code == 410 and "déjà été utilisé" in again.get_data(as_text=True)


def test_the_owner_clicking_the_link_does_not_prove_an_account_someone_else_made(app, db_session):
    attacker = app.test_client()
    sign_up(attacker, "victime@example.org", ATTACKER_PASSWORD)
    path = link_in(mails(db_session, "victime@example.org")[-1])
    victim = app.test_client()  # the real owner opens the e-mail and clicks
    page = victim.get(path).get_data(as_text=True)
    assert "Choisissez un nouveau mot de passe" in page  # the way to take the account back
    assert post(victim, path, form_page="/connexion").status_code == 403
    victim_with_own_account = app.test_client()
    sign_up(victim_with_own_account, "autre@example.org", VICTIM_PASSWORD)
    assert post(victim_with_own_account, path, form_page="/mon-compte").status_code == 403
    assert user_of(db_session, "victime@example.org").email_verified_at is None


def test_a_confirmation_link_expires_and_proves_only_the_address_it_was_sent_to(
    app, client, db_session, monkeypatch
):
    sign_up(client, "lea@example.org", STUDENT_PASSWORD)
    path = link_in(mails(db_session, "lea@example.org")[-1])
    user = user_of(db_session, "lea@example.org")
    user.email = "autre@example.org"  # the address changed since the link left
    db_session.commit()
    assert app.test_client().get(path).status_code == 410
    user.email = "lea@example.org"
    db_session.commit()
    later = links.utcnow() + dt.timedelta(days=4)
    monkeypatch.setattr(links, "utcnow", lambda: later)
    expired = app.test_client().get(path)
    assert expired.status_code == 410 and "expiré" in expired.get_data(as_text=True)
    assert app.test_client().get("/mon-compte/confirmer/pas-un-vrai-lien").status_code == 404


def test_a_new_confirmation_link_replaces_the_previous_one(client, db_session):
    sign_up(client, "lea@example.org", STUDENT_PASSWORD)
    first = link_in(mails(db_session, "lea@example.org")[-1])
    post(client, "/mon-compte/confirmer", form_page="/mon-compte")
    second = link_in(mails(db_session, "lea@example.org")[-1])
    assert first != second
    assert client.get(first).status_code == 410
    assert client.get(second).status_code == 200


def test_an_unproven_address_never_gets_a_learner_link(db_session, school_admin):
    learner = Learner(
        organization_id=school_admin.organization.id, first_name="Eve", last_name="Martin"
    )
    db_session.add(learner)
    unproven = users.create_user(
        db_session, first_name="Eve", last_name="Martin", email="eve@example.org"
    )
    with pytest.raises(users.EmailNotProven):
        users.link_learner(db_session, learner, unproven)
    assert learner.user_id is None
    unproven.email_verified_at = sessions.utcnow()
    users.link_learner(db_session, learner, unproven)
    assert learner.user_id == unproven.id
    # An account the school made (an identifiant, no e-mail) has nothing to prove.
    other = Learner(organization_id=school_admin.organization.id, first_name="Ali", last_name="B")
    db_session.add(other)
    no_email = users.create_user(db_session, first_name="Ali", last_name="B", username="ali.b0101")
    users.link_learner(db_session, other, no_email)
    assert other.user_id == no_email.id


# -- 3. temporary passwords -----------------------------------------------------------------------


def test_a_temporary_password_reaches_nothing_but_the_change_form(app, client, db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    pupil = student(db_session)
    users.set_password(db_session, pupil, "Temporaire-123", must_change=True)
    db_session.commit()
    assert (
        sign_in(client, pupil.email, "Temporaire-123")
        .headers["Location"]
        .startswith("/mon-compte/mot-de-passe")
    )
    for path in (
        "/mes-parcours",
        "/mon-profil",
        "/mon-compte",
        "/orga",
        f"/campagnes/{campaign.code}",
    ):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"].startswith("/mon-compte/mot-de-passe"), path
    started = client.post(
        f"/campagnes/{campaign.code}/commencer",
        data={"csrf_token": csrf_token(client, "/mon-compte/mot-de-passe")},
    )
    assert started.status_code == 303 and started.headers["Location"].startswith(
        "/mon-compte/mot-de-passe"
    )
    assert client.get("/mon-compte/mot-de-passe").status_code == 200
    changed = post(
        client,
        "/mon-compte/mot-de-passe",
        {
            "current_password": "Temporaire-123",
            "new_password": STUDENT_PASSWORD,
            "next": "/mes-parcours",
        },
        form_page="/mon-compte/mot-de-passe",
    )
    assert changed.status_code == 302 and changed.headers["Location"] == "/mes-parcours"
    assert client.get("/mes-parcours").status_code == 200


def test_a_teachers_reset_ends_the_students_sessions_and_requires_a_new_password(app, db_session):
    from campaigns.orga.learners import reset_password

    organization, _teacher = school(db_session)
    pupil = student(db_session)
    pupil.email_verified_at = sessions.utcnow()
    learner = Learner(
        organization_id=organization.id, user_id=pupil.id, first_name="Léa", last_name="Élève1"
    )
    db_session.add(learner)
    db_session.commit()
    laptop = app.test_client()
    sign_in(laptop, pupil.email, STUDENT_PASSWORD)
    assert laptop.get("/mes-parcours").status_code == 200
    _user, temporary = reset_password(db_session, learner)
    db_session.commit()
    assert laptop.get("/mes-parcours").status_code == 302  # signed out
    fresh = app.test_client()
    sign_in(fresh, pupil.email, temporary)
    assert fresh.get("/mes-parcours").status_code == 303


# -- 4. sessions that end -------------------------------------------------------------------------


def test_a_copied_cookie_no_longer_works_after_sign_out(app, db_session, school_admin):
    browser = app.test_client()
    sign_in(browser, "direction@jaures.example", ADMIN_PASSWORD)
    cookie = browser.get_cookie("parcours_session").value
    thief = app.test_client()
    thief.set_cookie("parcours_session", cookie)
    assert thief.get("/mon-compte").status_code == 200
    assert post(browser, "/deconnexion", form_page="/mon-compte").status_code == 302
    assert thief.get("/mon-compte").status_code == 302


def test_the_session_lifetime_is_absolute(app, db_session, school_admin, monkeypatch):
    browser = app.test_client()
    sign_in(browser, "direction@jaures.example", ADMIN_PASSWORD)
    started = sessions.utcnow()
    browser.get("/mon-compte")  # the first form of the session stores its CSRF token
    for hours in (4, 8, 11.9):  # active all day long…
        moment = started + dt.timedelta(hours=hours)
        monkeypatch.setattr(sessions, "utcnow", lambda moment=moment: moment)
        response = browser.get("/mon-compte")
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers  # nothing extended, nothing re-signed
    late = started + sessions.SESSION_LIFETIME + dt.timedelta(minutes=1)
    monkeypatch.setattr(sessions, "utcnow", lambda: late)
    assert browser.get("/mon-compte").status_code == 302  # …and still signed out at the end


def test_ended_sessions_are_purged(db_session, school_admin):
    token, _row = sessions.open_session(db_session, school_admin.admin)
    sessions.end_session(db_session, token)
    assert sessions.purge_ended(db_session, older_than=dt.timedelta(0)) >= 1
    assert sessions.signed_in(db_session, token) is None


# -- 5. campaign-code guessing --------------------------------------------------------------------


def guess(n: int) -> str:
    return f"ABCDEF{n % 8 + 2}{n // 8 % 8 + 2}2"


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/campagnes/{code}"),
        ("POST", "/campagnes/{code}/commencer"),
        ("GET", "/campagnes/{code}/regles/1"),
        ("GET", "/campagnes/{code}/identifiant"),
        ("GET", "/campagnes/{code}/profil"),
    ],
)
def test_code_guessing_is_counted_on_every_route_that_tells_a_code_exists(
    app, client, db_session, method, template
):
    from campaigns.journey.views import CODE_GUESSES_PER_USER

    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher, external_id_label="INE")
    student(db_session)
    db_session.commit()
    sign_in(client, "eleve1@example.org", STUDENT_PASSWORD)
    token = csrf_token(client, "/mes-parcours")
    data = {"csrf_token": token} if method == "POST" else None
    for n in range(CODE_GUESSES_PER_USER.max_hits):
        response = client.open(template.format(code=guess(n)), method=method, data=data)
        assert response.status_code == 404, (n, response.status_code)
    # Out of guesses: even the right code is refused, so the answer tells nothing.
    real = client.open(template.format(code=campaign.code), method=method, data=data)
    assert real.status_code == 429


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/campagnes/{code}/evaluation"),
        ("GET", "/campagnes/{code}/checkpoint"),
        ("GET", "/campagnes/{code}/resultats"),
        ("POST", "/campagnes/{code}/envoi"),
        ("POST", "/campagnes/{code}/ameliorer"),
        ("POST", "/campagnes/{code}/repasser"),
        ("POST", "/campagnes/{code}/signalement"),
    ],
)
def test_code_guessing_is_counted_on_the_pages_of_a_test(app, client, db_session, method, template):
    from campaigns.journey.views import CODE_GUESSES_PER_USER

    organization, teacher = school(db_session)
    assessment_campaign(db_session, organization, teacher)
    student(db_session)
    db_session.commit()
    sign_in(client, "eleve1@example.org", STUDENT_PASSWORD)
    data = {"csrf_token": csrf_token(client, "/mes-parcours")} if method == "POST" else None
    statuses = [
        client.open(template.format(code=guess(n)), method=method, data=data).status_code
        for n in range(CODE_GUESSES_PER_USER.max_hits + 2)
    ]
    assert statuses == [404] * CODE_GUESSES_PER_USER.max_hits + [429, 429]


def test_guesses_behind_the_same_address_never_stop_a_student_in_a_test(app, client, db_session):
    from campaigns.journey.views import CODE_GUESSES

    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    student(db_session)
    db_session.commit()
    sign_in(client, "eleve1@example.org", STUDENT_PASSWORD)
    start = post(client, f"/campagnes/{campaign.code}/commencer", form_page="/mes-parcours")
    assert start.status_code == 302
    question = f"/campagnes/{campaign.code}/evaluation"
    assert client.get(question).status_code == 200
    classmate = app.test_client()  # same school, same address
    for n in range(CODE_GUESSES.max_hits + 2):
        classmate.get(f"/campagnes/{guess(n)}")
    assert classmate.get(f"/campagnes/{campaign.code}").status_code == 429
    assert client.get(question).status_code == 200  # the test goes on
    assert client.get(f"/campagnes/{campaign.code}/resultats").status_code == 302


def test_a_known_code_costs_no_guess(client, db_session):
    from campaigns.journey.views import CODE_GUESSES

    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    db_session.commit()
    for _ in range(CODE_GUESSES.max_hits + 5):
        assert client.get(f"/campagnes/{campaign.code}").status_code == 200


# -- 6. current-password guesses ------------------------------------------------------------------


def test_current_password_guesses_are_limited(app, client, db_session, school_admin):
    from campaigns.accounts.views import CURRENT_PASSWORD_GUESSES

    sign_in(client, "direction@jaures.example", ADMIN_PASSWORD)

    def change(current):
        return post(
            client,
            "/mon-compte/mot-de-passe",
            {"current_password": current, "new_password": "Tout-Nouveau-99"},
            form_page="/mon-compte/mot-de-passe",
        )

    for n in range(CURRENT_PASSWORD_GUESSES.max_hits):
        assert change(f"Devine-{n:04d}").status_code == 400
    blocked = change(ADMIN_PASSWORD)
    assert blocked.status_code == 429 and "Trop de tentatives" in blocked.get_data(as_text=True)
    # Only the change form is limited: the owner still signs in elsewhere.
    assert sign_in(app.test_client(), "direction@jaures.example", ADMIN_PASSWORD).status_code == 302


# -- 7. nobody locks a user out -------------------------------------------------------------------


def test_failing_someones_login_does_not_lock_them_out_of_their_own_browser(
    app, db_session, school_admin
):
    from campaigns.accounts.views import SIGN_IN_PER_LOGIN

    own_browser = app.test_client()
    assert sign_in(own_browser, "direction@jaures.example", ADMIN_PASSWORD).status_code == 302
    post(own_browser, "/deconnexion", form_page="/mon-compte")

    attacker = app.test_client()
    for _ in range(SIGN_IN_PER_LOGIN.max_hits + 5):
        assert sign_in(attacker, "direction@jaures.example", "Mauvais-0000").status_code in (
            401,
            429,
        )
    assert sign_in(attacker, "direction@jaures.example", ADMIN_PASSWORD).status_code == 429
    # An unknown browser is slowed down too…
    assert sign_in(app.test_client(), "direction@jaures.example", ADMIN_PASSWORD).status_code == 429
    # …but the owner's browser signs in with the right password.
    assert sign_in(own_browser, "direction@jaures.example", ADMIN_PASSWORD).status_code == 302


def test_a_trusted_browser_is_limited_on_its_own(app, db_session, school_admin):
    from campaigns.accounts.views import SIGN_IN_PER_DEVICE

    browser = app.test_client()
    sign_in(browser, "direction@jaures.example", ADMIN_PASSWORD)
    post(browser, "/deconnexion", form_page="/mon-compte")
    for _ in range(SIGN_IN_PER_DEVICE.max_hits):
        assert sign_in(browser, "direction@jaures.example", "Mauvais-0000").status_code == 401
    assert sign_in(browser, "direction@jaures.example", ADMIN_PASSWORD).status_code == 429


def test_a_device_cookie_cannot_be_forged_nor_used_for_another_login(app, db_session, school_admin):
    from campaigns.accounts.views import SIGN_IN_PER_LOGIN

    users.create_user(
        db_session, first_name="Autre", last_name="Compte", email="autre@jaures.example",
        password=VICTIM_PASSWORD,
    )  # fmt: skip
    db_session.commit()
    other_login_browser = app.test_client()  # trusted, but for another login
    assert sign_in(other_login_browser, "autre@jaures.example", VICTIM_PASSWORD).status_code == 302
    post(other_login_browser, "/deconnexion", form_page="/mon-compte")
    attacker = app.test_client()
    for _ in range(SIGN_IN_PER_LOGIN.max_hits):
        sign_in(attacker, "direction@jaures.example", "Mauvais-0000")
    forged = app.test_client()
    forged.set_cookie("parcours_device", "W1siYWJjIiwiZGVmIl1d.forged-signature")
    assert sign_in(forged, "direction@jaures.example", ADMIN_PASSWORD).status_code == 429
    assert (
        sign_in(other_login_browser, "direction@jaures.example", ADMIN_PASSWORD).status_code == 429
    )
    # …while the other login's own browser is still trusted for it.
    assert sign_in(other_login_browser, "autre@jaures.example", VICTIM_PASSWORD).status_code == 302


# -- 8. sign-up does not tell who has an account --------------------------------------------------


def test_sign_up_answers_the_same_for_a_known_address_and_mails_its_owner(
    app, db_session, school_admin
):
    known_browser, new_browser = app.test_client(), app.test_client()
    known = sign_up(known_browser, "direction@jaures.example", "Autre-Motdepasse-3")
    new = sign_up(new_browser, "nouveau@jaures.example", "Autre-Motdepasse-3")
    assert known.status_code == new.status_code == 302
    assert known.headers["Location"] == new.headers["Location"]
    # The cookies are alike too (Flask's session cookie is signed, not encrypted: readable).
    serializer = app.session_interface.get_signing_serializer(app)

    def cookie(browser, address):
        content = serializer.loads(browser.get_cookie("parcours_session").value)
        flashes = [(category, text.replace(address, "X")) for category, text in content["_flashes"]]
        return sorted(content), flashes, len(content["sid"])

    assert cookie(known_browser, "direction@jaures.example") == cookie(
        new_browser, "nouveau@jaures.example"
    )
    # (What the account can do next necessarily differs: README, "Security".)
    [owner_mail] = mails(db_session, "direction@jaures.example")
    assert owner_mail["subject"] == "Vous avez déjà un compte sur Parcours"
    assert "/mot-de-passe-oublie" in owner_mail["body"]
    # Nothing changed on the existing account: not its password, not its names.
    assert (
        sign_in(app.test_client(), "direction@jaures.example", "Autre-Motdepasse-3").status_code
        == 401
    )
    assert sign_in(app.test_client(), "direction@jaures.example", ADMIN_PASSWORD).status_code == 302
    assert user_of(db_session, "direction@jaures.example").first_name != "Eve"


def test_forgotten_password_answers_the_same_for_unknown_addresses(app, db_session, school_admin):
    known = post(
        app.test_client(),
        "/mot-de-passe-oublie",
        {"email": "direction@jaures.example"},
        form_page="/mot-de-passe-oublie",
    )
    unknown = post(
        app.test_client(),
        "/mot-de-passe-oublie",
        {"email": "personne@jaures.example"},
        form_page="/mot-de-passe-oublie",
    )
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True).replace("direction", "X") == unknown.get_data(
        as_text=True
    ).replace("personne", "X")
    assert len(mails(db_session, "direction@jaures.example")) == 1
    assert mails(db_session, "personne@jaures.example") == []


def test_a_reset_link_works_once_and_proves_the_address(app, db_session, school_admin):
    user = school_admin.admin
    user.email_verified_at = None
    db_session.commit()
    post(
        app.test_client(),
        "/mot-de-passe-oublie",
        {"email": user.email},
        form_page="/mot-de-passe-oublie",
    )
    path = link_in(mails(db_session, user.email)[-1])
    browser = app.test_client()
    weak = post(browser, path, {"new_password": "court"}, form_page=path)
    assert weak.status_code == 400
    done = post(browser, path, {"new_password": "Tout-Nouveau-77"}, form_page=path)
    assert done.status_code == 303
    assert browser.get("/mon-compte").status_code == 200  # signed in
    assert user_of(db_session, user.email).email_verified_at is not None
    assert app.test_client().get(path).status_code == 410


# -- the command line -----------------------------------------------------------------------------


def test_an_invitation_is_proof_of_the_address_it_was_sent_to(app, db_session, school_admin):
    """An account created through the invitation link has a proven address (the migration
    keeps those too)."""
    admin = app.test_client()
    sign_in(admin, "direction@jaures.example", ADMIN_PASSWORD)
    post(
        admin,
        "/orga/equipe",
        {"email": "nouvelle@jaures.example", "role": "MEMBER"},
        form_page="/orga/equipe",
    )
    path = link_in(mails(db_session, "nouvelle@jaures.example")[-1])
    joined = post(
        app.test_client(),
        path,
        {"first_name": "Nina", "last_name": "Nouvelle", "password": "Nouvelle-Prof-1"},
        form_page=path,
    )
    assert joined.status_code == 303
    assert user_of(db_session, "nouvelle@jaures.example").email_verified_at is not None
    accepted = db_session.scalars(
        select(Invitation).where(Invitation.email == "nouvelle@jaures.example")
    ).one()
    assert accepted.accepted_at is not None


# -- roles held by addresses nobody proved (from before migration 0006) ---------------------------


def test_an_unproven_member_reaches_no_panel_and_cannot_be_made_admin(
    app, db_session, school_admin
):
    legacy = users.create_user(
        db_session, first_name="Ancien", last_name="Membre", email="ancien@jaures.example",
        password=VICTIM_PASSWORD,
    )  # fmt: skip
    legacy.cgu_accepted_at = legacy.created_at
    membership = Membership(
        organization_id=school_admin.organization.id, user_id=legacy.id, role=MembershipRole.MEMBER
    )
    db_session.add(membership)
    db_session.commit()
    browser = app.test_client()
    sign_in(browser, "ancien@jaures.example", VICTIM_PASSWORD)
    for path in ("/orga", "/orga/campagnes", "/orga/equipe"):
        page = browser.get(path)
        assert page.status_code == 403 and "Confirmez votre adresse e-mail" in page.get_data(
            as_text=True
        )
    admin = app.test_client()
    sign_in(admin, "direction@jaures.example", ADMIN_PASSWORD)
    promoted = post(
        admin,
        f"/orga/equipe/membres/{membership.id}/role",
        {"role": "ADMIN"},
        form_page="/orga/equipe",
    )
    assert promoted.status_code == 409
    assert "n’a pas encore confirmé son adresse" in promoted.get_data(as_text=True)
    db_session.refresh(membership)
    assert membership.role is MembershipRole.MEMBER
    # Once the owner confirms from their own session, the panel opens.
    post(browser, "/mon-compte/confirmer", form_page="/mon-compte")
    path = link_in(mails(db_session, "ancien@jaures.example")[-1])
    assert post(browser, path, form_page=path).status_code == 303
    assert browser.get("/orga/campagnes").status_code == 200


def test_a_password_change_renews_the_session_id_and_voids_reset_links(
    app, client, db_session, school_admin
):
    post(
        app.test_client(),
        "/mot-de-passe-oublie",
        {"email": "direction@jaures.example"},
        form_page="/mot-de-passe-oublie",
    )
    reset = link_in(mails(db_session, "direction@jaures.example")[-1])
    sign_in(client, "direction@jaures.example", ADMIN_PASSWORD)
    before = client.get_cookie("parcours_session").value
    changed = post(
        client,
        "/mon-compte/mot-de-passe",
        {"current_password": ADMIN_PASSWORD, "new_password": "Tout-Nouveau-55"},
        form_page="/mon-compte/mot-de-passe",
    )
    assert changed.status_code == 302
    assert client.get("/mon-compte").status_code == 200  # still signed in…
    stale = app.test_client()
    stale.set_cookie("parcours_session", before)
    assert stale.get("/mon-compte").status_code == 302  # …under a new session id
    assert app.test_client().get(reset).status_code == 410


def test_an_old_device_cookie_is_not_trusted(app, db_session, school_admin):
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from campaigns.accounts import views

    class SignedLongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(sessions.utcnow().timestamp() - views.DEVICE_LIFETIME.total_seconds()) - 60

    with app.test_request_context():
        tag = views._login_tag("direction@jaures.example")

    def device_cookie(signer):
        serializer = URLSafeTimedSerializer(app.secret_key, salt="parcours-device", signer=signer)
        return serializer.dumps([[tag, "device-id"]])

    attacker = app.test_client()
    for _ in range(views.SIGN_IN_PER_LOGIN.max_hits):
        sign_in(attacker, "direction@jaures.example", "Mauvais-0000")
    recent, old = app.test_client(), app.test_client()
    recent.set_cookie("parcours_device", device_cookie(TimestampSigner))
    old.set_cookie("parcours_device", device_cookie(SignedLongAgo))
    assert sign_in(old, "direction@jaures.example", ADMIN_PASSWORD).status_code == 429
    assert sign_in(recent, "direction@jaures.example", ADMIN_PASSWORD).status_code == 302
