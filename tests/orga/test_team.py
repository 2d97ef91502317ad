"""The team page: members, roles, invitations by e-mail through the job queue, and their rules."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading

import pytest
from sqlalchemy import func, select

from campaigns.accounts import users
from campaigns.orga import team
from campaigns.shared.models import (
    Invitation,
    Membership,
    MembershipRole,
    Organization,
    OrganizationType,
    User,
)
from config.db import Database, utcnow
from config.jobs import Job, JobStatus
from config.migrations import upgrade
from config.settings import Settings
from tests.conftest import csrf_token
from tests.factories import organization_with_admin
from tests.orga_helpers import sign_in, teacher, world
from tests.smtp_sink import SmtpSink, clean_worker_environment, serve, smtp_environment

NEW_PASSWORD = "Nouveau-Prof-1"
LINK = re.compile(r"http://127\.0\.0\.1:5000/invitation/([A-Za-z0-9_-]+)")


def post(client, path, data=None, *, form_page="/orga/equipe"):
    return client.post(path, data={"csrf_token": csrf_token(client, form_page), **(data or {})})


def sign_out(client):
    response = client.post("/deconnexion", data={"csrf_token": csrf_token(client, "/campagnes")})
    assert response.status_code == 302


def membership(db_session, organization, user):
    db_session.expire_all()
    return db_session.scalars(
        select(Membership).where(
            Membership.organization_id == organization.id, Membership.user_id == user.id
        )
    ).one_or_none()


def waiting_invitation(db_session, organization, *, token_hash):
    """An invitation to x@example.org, valid a week, stored and committed."""
    invitation = Invitation(
        organization_id=organization.id,
        email="x@example.org",
        role=MembershipRole.MEMBER,
        token_hash=token_hash,
        expires_at=utcnow() + dt.timedelta(days=7),
    )
    db_session.add(invitation)
    db_session.commit()
    return invitation


def mail_jobs(db_session):
    db_session.expire_all()
    return db_session.scalars(select(Job).where(Job.kind == "mail.send").order_by(Job.id)).all()


def token_of(job):
    match = LINK.search(job.payload["body"])
    assert match, job.payload["body"]
    return match.group(1)


def invite(client, email, role="MEMBER"):
    response = post(client, "/orga/equipe", {"email": email, "role": role})
    assert response.status_code == 303, response.get_data(as_text=True)
    return response


@pytest.fixture
def w(db_session):
    found = world(db_session)
    db_session.commit()
    return found


@pytest.fixture
def smtp():
    yield from serve(SmtpSink())


@pytest.fixture
def worker_env(monkeypatch):
    return clean_worker_environment(monkeypatch)


@pytest.fixture
def as_admin(client, w):
    sign_in(client, w.admin.email)
    return client


@pytest.fixture
def as_member(client, w):
    sign_in(client, w.member.email)
    return client


# -- the page -------------------------------------------------------------------------------------


def test_every_member_sees_the_team_sorted_by_last_name(as_member, w, db_session):
    teacher(db_session, w.school, email="b@example.org", first_name="Zoé", last_name="Bernard")
    teacher(db_session, w.other, email="x@example.org", last_name="Dautreecole")
    db_session.commit()
    page = as_member.get("/orga/equipe").get_data(as_text=True)
    for header in ("Nom", "Prénom", "E-mail", "Rôle"):
        assert f'<th scope="col">{header}</th>' in page
    assert "<caption>" in page and 'aria-current="page"' in page
    names = re.findall(r'<th scope="row">([^<]+)</th>', page)
    assert names == ["Admin", "Bernard", "Membre"]
    assert "Dautreecole" not in page
    assert "Administrateur" in page and "Membre" in page
    # A member sees no admin action, only the way to leave.
    assert "/role" not in page and "Ajouter un membre" not in page
    assert "Quitter l’organisation" in page and page.count("/retirer") == 1


def test_the_team_is_paginated_by_fifty(as_member, w, db_session):
    for n in range(50):  # with the admin and the member: 52
        user = users.create_user(
            db_session, first_name="Prof", last_name=f"Zz{n:02}", email=f"z{n}@example.org"
        )
        db_session.add(Membership(organization=w.school, user=user, role=MembershipRole.MEMBER))
    db_session.commit()
    first = as_member.get("/orga/equipe").get_data(as_text=True)
    assert len(re.findall(r'<th scope="row">', first)) == 50
    assert "Page 1 sur 2" in first and 'href="/orga/equipe?page=2" rel="next"' in first
    second = as_member.get("/orga/equipe?page=2").get_data(as_text=True)
    assert re.findall(r'<th scope="row">([^<]+)</th>', second) == ["Zz48", "Zz49"]
    assert 'href="/orga/equipe?page=1" rel="prev"' in second and 'rel="next"' not in second
    # A page past the end shows the last one.
    assert "Page 2 sur 2" in as_member.get("/orga/equipe?page=9").get_data(as_text=True)


def test_admins_see_the_actions_and_pending_invitations(as_admin, w):
    invite(as_admin, "nouvelle@example.org")
    page = as_admin.get("/orga/equipe").get_data(as_text=True)
    assert "Ajouter un membre" in page and 'for="email"' in page and 'for="role"' in page
    assert "Nommer administrateur" in page and "Retirer" in page
    assert "Invitations en attente" in page and "nouvelle@example.org" in page
    assert "Renvoyer" in page and "Annuler" in page


def test_the_team_page_needs_a_signed_in_member(client, w):
    response = client.get("/orga/equipe")
    assert response.status_code == 302 and "/connexion" in response.headers["Location"]


# -- adding ---------------------------------------------------------------------------------------


def test_no_email_when_nobody_was_added(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, w.member.email)  # already a member
    assert post(client, "/orga/equipe", {"email": "x@", "role": "MEMBER"}).status_code == 400
    response = post(client, "/orga/equipe", {"email": w.other_admin.email, "role": "CHEF"})
    assert response.status_code == 400
    sign_out(client)
    sign_in(client, w.member.email)  # not an admin: refused
    response = post(client, "/orga/equipe", {"email": w.other_admin.email, "role": "MEMBER"})
    assert response.status_code == 403
    assert membership(db_session, w.school, w.other_admin) is None
    assert mail_jobs(db_session) == []


def test_adding_an_existing_account_invites_it_and_nobody_joins_until_they_accept(
    as_admin, w, db_session
):
    other_admin = w.other_admin
    response = invite(as_admin, other_admin.email.upper(), role="ADMIN")
    assert response.headers["Location"].endswith("/orga/equipe")
    assert membership(db_session, w.school, other_admin) is None  # nobody joins by our form
    [job] = mail_jobs(db_session)
    assert job.payload["to"] == other_admin.email  # the account's address, not as typed
    assert job.payload["subject"] == f"Invitation à rejoindre {w.school.name} sur Parcours"
    assert "/invitation/" in job.payload["body"]
    page = as_admin.get("/orga/equipe").get_data(as_text=True)
    assert f"Une invitation a été envoyée à {other_admin.email}" in page

    invite(as_admin, w.member.email)  # already a member: nothing happens, nothing to tell
    page = as_admin.get("/orga/equipe").get_data(as_text=True)
    assert "est déjà membre de l’organisation" in page
    assert len(mail_jobs(db_session)) == 1

    # The owner of the address, signed in, accepts with the link from their mailbox.
    sign_out(as_admin)
    sign_in(as_admin, other_admin.email)
    path = f"/invitation/{token_of(job)}"
    assert post(as_admin, path, form_page=path).status_code == 303
    assert membership(db_session, w.school, other_admin).role is MembershipRole.ADMIN


def test_the_invitation_email_goes_out_through_smtp(
    as_admin, w, db_session, bound_database, smtp, worker_env
):
    from config.jobs import run_due_jobs

    worker_env(**smtp_environment(smtp))
    invite(as_admin, w.other_admin.email, role="MEMBER")
    assert run_due_jobs(bound_database).done == 1
    assert [job.status for job in mail_jobs(db_session)] == [JobStatus.DONE]
    [received] = smtp.messages
    assert received.recipients == [w.other_admin.email]
    message = received.message
    assert message["Subject"] == f"Invitation à rejoindre {w.school.name} sur Parcours"
    assert "http://127.0.0.1:5000/invitation/" in message.get_content()
    assert "Alice Admin" in message.get_content()


def test_an_invitation_rolled_back_leaves_no_email(app, w, db_session):
    with app.test_request_context():
        added = team.add_member(
            db_session,
            w.school,
            email=w.other_admin.email,
            role=MembershipRole.MEMBER,
            invited_by=w.admin,
            public_url="https://parcours.example.org/",
        )
        assert added.outcome is team.Outcome.INVITED
        [job] = mail_jobs(db_session)  # queued in the same transaction…
        assert "\nhttps://parcours.example.org/invitation/" in job.payload["body"]
        db_session.rollback()  # …so it goes with it
    assert membership(db_session, w.school, w.other_admin) is None
    assert mail_jobs(db_session) == []


def test_a_bad_address_or_role_is_explained_next_to_the_field(as_admin, w, db_session):
    response = post(as_admin, "/orga/equipe", {"email": "pas-une-adresse", "role": "MEMBER"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'aria-describedby="email-error"' in page and "adresse e-mail valide" in page
    assert 'value="pas-une-adresse"' in page
    response = post(as_admin, "/orga/equipe", {"email": "ok@example.org", "role": "OWNER"})
    assert response.status_code == 400 and 'id="role-error"' in response.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Invitation)) == 0


def test_inviting_a_new_person_stores_a_hash_and_queues_the_email(as_admin, w, db_session):
    invite(as_admin, "Nouvelle.Prof@Example.org", role="ADMIN")
    invitation = db_session.scalars(select(Invitation)).one()
    assert invitation.email == "nouvelle.prof@example.org"
    assert invitation.role is MembershipRole.ADMIN and invitation.invited_by_id == w.admin.id
    assert dt.timedelta(days=6, hours=23) < invitation.expires_at - utcnow() <= dt.timedelta(7)

    [job] = mail_jobs(db_session)
    assert job.status is JobStatus.PENDING
    assert job.payload["to"] == "nouvelle.prof@example.org"
    assert job.payload["subject"] == f"Invitation à rejoindre {w.school.name} sur Parcours"
    token = token_of(job)
    assert len(token) >= 43  # secrets.token_urlsafe(32)
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in invitation.token_hash
    assert "Alice Admin" in job.payload["body"] and "administrateur" in job.payload["body"]
    page = as_admin.get("/orga/equipe").get_data(as_text=True)
    assert "Une invitation a été envoyée à nouvelle.prof@example.org" in page


def test_inviting_again_renews_the_invitation_and_kills_the_old_link(as_admin, w, db_session):
    invite(as_admin, "nouvelle@example.org")
    first = db_session.scalars(select(Invitation)).one()
    old_hash, old_token = first.token_hash, token_of(mail_jobs(db_session)[0])
    invite(as_admin, "nouvelle@example.org", role="ADMIN")  # the "Renvoyer" button
    db_session.expire_all()
    renewed = db_session.scalars(select(Invitation)).one()
    assert renewed.id == first.id and renewed.token_hash != old_hash
    assert renewed.role is MembershipRole.ADMIN
    jobs = mail_jobs(db_session)
    assert len(jobs) == 1  # the waiting e-mail now carries the newest link only
    new_token = token_of(jobs[0])
    assert new_token != old_token

    sign_out(as_admin)
    assert as_admin.get(f"/invitation/{old_token}").status_code == 404
    assert as_admin.get(f"/invitation/{new_token}").status_code == 200


def test_a_renewal_after_the_first_email_left_queues_a_second_email(
    as_admin, w, db_session, bound_database
):
    from config.jobs import run_due_jobs

    invite(as_admin, "nouvelle@example.org")
    run_due_jobs(bound_database)  # development without SMTP: printed, done
    invite(as_admin, "nouvelle@example.org")
    jobs = mail_jobs(db_session)
    assert [j.status for j in jobs] == [JobStatus.DONE, JobStatus.PENDING]
    invitation = db_session.scalars(select(Invitation)).one()
    assert invitation.token_hash == hashlib.sha256(token_of(jobs[1]).encode()).hexdigest()


# -- the link in the e-mail -----------------------------------------------------------------------


def test_the_emailed_link_creates_the_account_joins_and_signs_in(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, "nouvelle@example.org", role="ADMIN")
    token = token_of(mail_jobs(db_session)[0])
    sign_out(client)

    path = f"/invitation/{token}"
    page = client.get(path).get_data(as_text=True)
    assert f"Rejoindre {w.school.name}" in page
    assert 'value="nouvelle@example.org" readonly' in page
    assert f"/connexion?next=/invitation/{token}" in page.replace("%2F", "/")
    response = client.post(
        path,
        data={
            "csrf_token": csrf_token(client, path),
            "first_name": "Nina",
            "last_name": "Nouvelle",
            "email": "pirate@example.org",  # ignored: the account gets the invited address
            "password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 303 and response.headers["Location"].endswith("/orga")
    user = db_session.scalars(select(User).where(User.email == "nouvelle@example.org")).one()
    assert (user.first_name, user.last_name) == ("Nina", "Nouvelle")
    assert db_session.scalar(select(User).where(User.email == "pirate@example.org")) is None
    assert membership(db_session, w.school, user).role is MembershipRole.ADMIN
    invitation = db_session.scalars(select(Invitation)).one()
    assert invitation.accepted_at is not None and invitation.accepted_by_id == user.id
    # Signed in at once: the panel asks for the terms of use first.
    landing = client.get("/orga")
    assert landing.status_code == 302 and "/orga/cgu" in landing.headers["Location"]

    # The link is used up; and the new account signs in with its password.
    sign_out(client)
    assert client.get(path).status_code == 410
    sign_in(client, "nouvelle@example.org", NEW_PASSWORD)


def test_signing_up_through_the_link_checks_names_and_password_strength(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, "nouvelle@example.org")
    token = token_of(mail_jobs(db_session)[0])
    sign_out(client)
    path = f"/invitation/{token}"
    response = client.post(
        path,
        data={"csrf_token": csrf_token(client, path), "first_name": "Nina", "password": "faible"},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="last_name-error"' in page and 'id="password-error"' in page
    assert 'value="Nina"' in page
    assert db_session.scalar(select(User).where(User.email == "nouvelle@example.org")) is None
    assert db_session.scalars(select(Invitation)).one().accepted_at is None


def test_an_invitee_whose_account_exists_is_sent_to_sign_in(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, "nouvelle@example.org")
    token = token_of(mail_jobs(db_session)[0])
    users.create_user(
        db_session,
        first_name="Nina",
        last_name="Nouvelle",
        email="nouvelle@example.org",
        password=NEW_PASSWORD,
    )
    db_session.commit()
    sign_out(client)
    path = f"/invitation/{token}"
    response = client.post(
        path,
        data={
            "csrf_token": csrf_token(client, path),
            "first_name": "Nina",
            "last_name": "Nouvelle",
            "password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 400
    assert "connectez-vous pour rejoindre" in response.get_data(as_text=True)
    assert db_session.scalars(select(Invitation)).one().accepted_at is None


def test_a_signed_in_user_joins_once_with_the_button(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, "nouvelle@example.org")
    token = token_of(mail_jobs(db_session)[0])
    sign_out(client)
    user = users.create_user(
        db_session,
        first_name="Nina",
        last_name="Nouvelle",
        email="nouvelle@example.org",
        password=NEW_PASSWORD,
    )
    db_session.commit()
    path = f"/invitation/{token}"
    # "Se connecter" on the invitation page brings them back to it.
    signed_in = client.post(
        f"/connexion?next={path}",
        data={
            "csrf_token": csrf_token(client, "/connexion"),
            "login": "nouvelle@example.org",
            "password": NEW_PASSWORD,
        },
    )
    assert signed_in.headers["Location"].endswith(path)
    page = client.get(path).get_data(as_text=True)
    assert f"Rejoindre {w.school.name}</button>" in page and 'name="password"' not in page
    token_field = csrf_token(client, path)
    first = client.post(path, data={"csrf_token": token_field})
    second = client.post(path, data={"csrf_token": token_field})  # a double click
    assert first.headers["Location"].endswith("/orga")
    assert second.status_code == 303 and second.headers["Location"].endswith("/orga")
    assert membership(db_session, w.school, user).role is MembershipRole.MEMBER
    count = db_session.scalar(select(func.count()).where(Membership.user_id == user.id))
    assert count == 1
    # The panel opens on the organization just joined.
    client.post("/orga/cgu", data={"csrf_token": csrf_token(client, "/orga/cgu"), "accept": "1"})
    assert w.school.name in client.get("/orga/equipe").get_data(as_text=True)


def test_a_used_link_cannot_serve_someone_else(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, "nouvelle@example.org")
    token = token_of(mail_jobs(db_session)[0])
    db_session.scalars(select(Invitation)).one().accepted_at = utcnow()
    db_session.commit()
    path = f"/invitation/{token}"
    assert client.get(path).status_code == 410  # the admin is not the one who used it
    response = client.post(path, data={"csrf_token": csrf_token(client, "/orga/equipe")})
    assert response.status_code == 410
    assert "déjà été utilisée" in response.get_data(as_text=True)


def test_expired_or_cancelled_links_change_nothing(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, "expiree@example.org")
    invite(client, "annulee@example.org")
    jobs = mail_jobs(db_session)
    expired_token, cancelled_token = token_of(jobs[0]), token_of(jobs[1])
    expired = db_session.scalars(select(Invitation).where(Invitation.email.like("expiree%"))).one()
    expired.expires_at = utcnow() - dt.timedelta(minutes=1)
    db_session.commit()
    page = client.get("/orga/equipe").get_data(as_text=True)
    assert "Expirée" in page  # still listed, to be sent again

    cancelled = db_session.scalars(
        select(Invitation).where(Invitation.email.like("annulee%"))
    ).one()
    response = post(client, f"/orga/equipe/invitations/{cancelled.id}/annuler")
    assert response.status_code == 303
    page = client.get("/orga/equipe").get_data(as_text=True)
    assert "annulee@example.org" not in page.split("Invitations en attente")[1].split("</table>")[0]

    sign_out(client)
    for token, text in ((expired_token, "a expiré"), (cancelled_token, "a été annulée")):
        path = f"/invitation/{token}"
        response = client.get(path)
        assert response.status_code == 410 and text in response.get_data(as_text=True)
        response = client.post(
            path,
            data={
                "csrf_token": csrf_token(client, "/connexion"),
                "first_name": "X",
                "last_name": "Y",
                "password": NEW_PASSWORD,
            },
        )
        assert response.status_code == 410
    assert db_session.scalar(select(User).where(User.email.like("%ee@example.org"))) is None


def test_unknown_links_are_404_and_guessing_is_rate_limited(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, "nouvelle@example.org")
    token = token_of(mail_jobs(db_session)[0])
    for attempt in range(20):
        response = client.get(f"/invitation/devine{attempt}")
        assert response.status_code == 404
        assert "n’est pas valide" in response.get_data(as_text=True)
    assert client.get("/invitation/encore-un").status_code == 429
    assert client.get(f"/invitation/{token}").status_code == 429  # until the window ends


def test_a_valid_link_gives_its_attempt_back(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, "nouvelle@example.org")
    token = token_of(mail_jobs(db_session)[0])
    for _ in range(25):
        assert client.get(f"/invitation/{token}").status_code == 200


# -- roles ----------------------------------------------------------------------------------------


def role_path(db_session, organization, user):
    return f"/orga/equipe/membres/{membership(db_session, organization, user).id}/role"


def test_admins_promote_and_demote_members(as_admin, w, db_session):
    response = post(as_admin, role_path(db_session, w.school, w.member), {"role": "ADMIN"})
    assert response.status_code == 303
    assert membership(db_session, w.school, w.member).role is MembershipRole.ADMIN
    assert "est maintenant administrateur" in as_admin.get("/orga/equipe").get_data(as_text=True)
    post(as_admin, role_path(db_session, w.school, w.member), {"role": "MEMBER"})
    assert membership(db_session, w.school, w.member).role is MembershipRole.MEMBER
    response = post(as_admin, role_path(db_session, w.school, w.member), {"role": "BOSS"})
    assert response.status_code == 400


def test_the_last_admin_can_be_neither_demoted_nor_removed(as_admin, w, db_session):
    own = membership(db_session, w.school, w.admin)
    response = post(as_admin, f"/orga/equipe/membres/{own.id}/role", {"role": "MEMBER"})
    assert response.status_code == 409
    assert "au moins un administrateur" in response.get_data(as_text=True)
    response = post(as_admin, f"/orga/equipe/membres/{own.id}/retirer")
    assert response.status_code == 409
    assert membership(db_session, w.school, w.admin).role is MembershipRole.ADMIN

    # With a second admin, stepping down is fine.
    post(as_admin, role_path(db_session, w.school, w.member), {"role": "ADMIN"})
    response = post(as_admin, f"/orga/equipe/membres/{own.id}/role", {"role": "MEMBER"})
    assert response.status_code == 303
    assert membership(db_session, w.school, w.admin).role is MembershipRole.MEMBER
    page = as_admin.get("/orga/equipe").get_data(as_text=True)
    assert "Ajouter un membre" not in page  # now a member


def test_admins_remove_members_and_members_may_leave(client, w, db_session):
    third = teacher(db_session, w.school, email="trois@example.org", last_name="Trois")
    db_session.commit()
    sign_in(client, w.member.email)
    response = post(
        client, f"/orga/equipe/membres/{membership(db_session, w.school, third).id}/retirer"
    )
    assert response.status_code == 403
    assert membership(db_session, w.school, third) is not None
    own = membership(db_session, w.school, w.member)
    response = post(client, f"/orga/equipe/membres/{own.id}/retirer")
    assert response.status_code == 303
    assert membership(db_session, w.school, w.member) is None
    assert client.get("/orga/equipe").status_code == 403  # no organization left

    sign_out(client)
    sign_in(client, w.admin.email)
    third_id = membership(db_session, w.school, third).id
    response = post(client, f"/orga/equipe/membres/{third_id}/retirer")
    assert response.status_code == 303
    assert membership(db_session, w.school, third) is None
    assert db_session.get(User, third.id) is not None  # the account stays
    assert "a été retiré de l’équipe" in client.get("/orga/equipe").get_data(as_text=True)


# -- removing asks first --------------------------------------------------------------------------

QUESTION = re.compile(r'<h1 id="question" tabindex="-1" autofocus>(.*?)</h1>', re.S)


def question(page: str) -> str:
    match = QUESTION.search(page)
    assert match, page
    return match.group(1).strip().replace("\u202f", " ")


def test_removing_a_member_is_asked_on_a_page_of_its_own(as_admin, w, db_session):
    path = f"/orga/equipe/membres/{membership(db_session, w.school, w.member).id}/retirer"
    team_page = as_admin.get("/orga/equipe").get_data(as_text=True)
    assert f'href="{path}"' in team_page  # a link (GET), no form posting from the list
    assert f'action="{path}"' not in team_page

    response = as_admin.get(path)
    assert response.status_code == 200
    # No script (window.confirm is blocked in cross-origin iframes), and framable in an LMS.
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers
    page = response.get_data(as_text=True)
    # The only script is the site's progressive enhancement (menu, tables), never a confirm().
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/parcours.js" defer>']
    assert question(page) == "Retirer Camille Membre de l’équipe ?"
    assert "<title>Retirer un membre – Parcours</title>" in page
    assert "Son compte Parcours est conservé" in page
    assert 'aria-current="page">Équipe</a>' in page
    form = page.split(f'<form method="post" action="{path}"', 1)[1].split("</form>", 1)[0]
    assert 'name="csrf_token"' in form
    assert 'aria-describedby="question consequences">Confirmer</button>' in form
    assert '<a href="/orga/equipe">Annuler</a>' in form
    assert membership(db_session, w.school, w.member) is not None  # asking changed nothing

    response = post(as_admin, path, form_page=path)  # "Confirmer", with the page's token
    assert response.status_code == 303 and response.headers["Location"].endswith("/orga/equipe")
    assert membership(db_session, w.school, w.member) is None
    assert "a été retiré de l’équipe" in as_admin.get("/orga/equipe").get_data(as_text=True)
    assert as_admin.get(path).status_code == 404  # gone: nothing left to ask about


def test_leaving_is_asked_in_the_first_person(as_member, w, db_session):
    path = f"/orga/equipe/membres/{membership(db_session, w.school, w.member).id}/retirer"
    assert f'href="{path}"' in as_member.get("/orga/equipe").get_data(as_text=True)
    page = as_member.get(path).get_data(as_text=True)
    assert question(page) == f"Quitter l’organisation {w.school.name} ?"
    assert "Vous n’aurez plus accès" in page and ">Confirmer</button>" in page
    response = post(as_member, path, form_page=path)
    assert response.status_code == 303
    assert membership(db_session, w.school, w.member) is None


def test_a_member_is_not_asked_to_remove_someone_else(as_member, w, db_session):
    path = f"/orga/equipe/membres/{membership(db_session, w.school, w.admin).id}/retirer"
    response = as_member.get(path)
    assert response.status_code == 403
    assert "Confirmer" not in response.get_data(as_text=True)


def test_the_last_admin_is_told_why_instead_of_being_asked(as_admin, w, db_session):
    path = f"/orga/equipe/membres/{membership(db_session, w.school, w.admin).id}/retirer"
    response = as_admin.get(path)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert question(page) == f"Quitter l’organisation {w.school.name} ?"
    assert 'role="alert">Une organisation garde toujours au moins un administrateur' in page
    assert '<form method="post" action="' + path not in page and "Confirmer" not in page
    assert '<a href="/orga/equipe">Retour à l’équipe</a>' in page
    # The rule holds for the POST whatever the page said (a page opened before a change).
    assert post(as_admin, path).status_code == 409
    assert membership(db_session, w.school, w.admin) is not None

    post(as_admin, role_path(db_session, w.school, w.member), {"role": "ADMIN"})
    assert as_admin.get(path).status_code == 200  # another admin now: may leave


def test_names_are_escaped_once_on_the_question(client, w, db_session):
    w.member.first_name = "<b>Jo</b>"
    w.school.name = "L'école A & B"
    db_session.commit()
    path = f"/orga/equipe/membres/{membership(db_session, w.school, w.member).id}/retirer"
    sign_in(client, w.admin.email)
    page = client.get(path).get_data(as_text=True)
    assert "Retirer &lt;b&gt;Jo&lt;/b&gt; Membre de l’équipe" in page
    assert "<b>Jo</b>" not in page and "&amp;lt;" not in page
    sign_out(client)
    sign_in(client, w.member.email)
    page = client.get(path).get_data(as_text=True)
    assert "Quitter l’organisation L&#39;école A &amp; B\u202f?" in page
    assert "&amp;#39;" not in page and "&amp;amp;" not in page


def test_members_get_403_on_admin_actions(as_member, w, db_session):
    admin_membership = membership(db_session, w.school, w.admin).id
    invitation = waiting_invitation(db_session, w.school, token_hash="0" * 64)
    for path, data in (
        ("/orga/equipe", {"email": "nouvelle@example.org", "role": "ADMIN"}),
        (f"/orga/equipe/membres/{admin_membership}/role", {"role": "MEMBER"}),
        (
            f"/orga/equipe/membres/{membership(db_session, w.school, w.member).id}/role",
            {"role": "ADMIN"},
        ),
        (f"/orga/equipe/membres/{admin_membership}/retirer", {}),
        (f"/orga/equipe/invitations/{invitation.id}/annuler", {}),
    ):
        assert post(as_member, path, data).status_code == 403, path
    db_session.expire_all()
    assert membership(db_session, w.school, w.member).role is MembershipRole.MEMBER
    assert db_session.get(Invitation, invitation.id).cancelled_at is None
    assert db_session.scalar(select(func.count()).select_from(Invitation)) == 1


def test_another_organizations_ids_are_404(as_admin, w, db_session):
    other_membership = membership(db_session, w.other, w.other_admin).id
    invitation = waiting_invitation(db_session, w.other, token_hash="1" * 64)
    for path, data in (
        (f"/orga/equipe/membres/{other_membership}/role", {"role": "MEMBER"}),
        (f"/orga/equipe/membres/{other_membership}/retirer", {}),
        (f"/orga/equipe/invitations/{invitation.id}/annuler", {}),
        ("/orga/equipe/membres/999999/retirer", {}),
    ):
        assert post(as_admin, path, data).status_code == 404, path
    for path in (
        f"/orga/equipe/membres/{other_membership}/retirer",
        "/orga/equipe/membres/0/retirer",
    ):
        assert as_admin.get(path).status_code == 404, path  # the confirmation page too
    assert membership(db_session, w.other, w.other_admin).role is MembershipRole.ADMIN
    assert db_session.get(Invitation, invitation.id).cancelled_at is None


def test_actions_need_a_csrf_token(as_admin, w, db_session):
    response = as_admin.post("/orga/equipe", data={"email": "n@example.org", "role": "MEMBER"})
    assert response.status_code == 400
    own = membership(db_session, w.school, w.member).id
    assert as_admin.post(f"/orga/equipe/membres/{own}/retirer").status_code == 400
    # A GET only asks (the confirmation page): it removes nobody.
    assert as_admin.get(f"/orga/equipe/membres/{own}/retirer").status_code == 200
    assert as_admin.put(f"/orga/equipe/membres/{own}/retirer").status_code == 405
    assert membership(db_session, w.school, w.member) is not None


# -- concurrency ----------------------------------------------------------------------------------


def test_two_admins_demoting_each_other_at_once_leave_one_admin(scratch_databases):
    database = Database(Settings(database_url=scratch_databases.new("team")))
    upgrade(database)
    with database.session() as session, session.begin():
        created = organization_with_admin(
            session,
            name="Lycée concurrent",
            type=OrganizationType.PRO,
            admin_email="a@example.org",
        )
        second = users.create_user(session, first_name="B", last_name="B", email="b@example.org")
        session.add(
            Membership(
                organization_id=created.organization.id,
                user_id=second.id,
                role=MembershipRole.ADMIN,
            )
        )
        session.flush()
        org_id = created.organization.id
        ids = dict(
            session.execute(
                select(Membership.user_id, Membership.id).where(
                    Membership.organization_id == org_id
                )
            ).all()
        )
        a_id, b_id = ids[created.admin.id], ids[second.id]

    outcome: dict[str, str] = {}

    def demote_a() -> None:
        with database.session() as session:
            organization = session.get(Organization, org_id)
            try:
                team.change_role(session, organization, a_id, MembershipRole.MEMBER)
                session.commit()
                outcome["second"] = "demoted"
            except team.LastAdmin:
                session.rollback()
                outcome["second"] = "refused"

    try:
        first = database.session()
        organization = first.get(Organization, org_id)
        team.change_role(first, organization, b_id, MembershipRole.MEMBER)  # not committed yet
        racer = threading.Thread(target=demote_a)
        racer.start()
        racer.join(0.5)
        assert racer.is_alive()  # waiting for the admins the first transaction holds
        first.commit()
        first.close()
        racer.join(20)
        assert outcome == {"second": "refused"}
        with database.session() as session:
            roles = session.scalars(
                select(Membership.role).where(Membership.organization_id == org_id)
            ).all()
        assert sorted(roles) == [MembershipRole.ADMIN, MembershipRole.MEMBER]
    finally:
        database.dispose()


def test_a_forwarded_link_does_not_let_another_account_in(client, w, db_session):
    sign_in(client, w.admin.email)
    invite(client, "nouvelle@example.org")  # the invitation is for this address…
    token = token_of(mail_jobs(db_session)[0])
    sign_out(client)
    sign_in(client, w.other_admin.email)  # …and someone else follows the link
    path = f"/invitation/{token}"
    response = client.post(path, data={"csrf_token": csrf_token(client, path)})
    assert response.status_code == 403
    assert "nouvelle@example.org" in response.get_data(as_text=True)
    assert membership(db_session, w.school, w.other_admin) is None
    assert db_session.scalars(select(Invitation)).one().accepted_at is None


def test_organization_names_are_escaped_once_on_the_invitation_page(client, w, db_session):
    w.school.name = "L'école A & B"
    db_session.commit()
    sign_in(client, w.admin.email)
    invite(client, "nouvelle@example.org")
    token = token_of(mail_jobs(db_session)[0])
    sign_out(client)
    page = client.get(f"/invitation/{token}").get_data(as_text=True)
    assert "L&#39;école A &amp; B" in page
    assert "&amp;#39;" not in page and "&amp;amp;" not in page


def test_cancelling_an_invitation_withdraws_its_email_still_waiting(as_admin, w, db_session):
    invite(as_admin, "partie@example.org")
    invitation = db_session.scalars(select(Invitation)).one()
    assert len(mail_jobs(db_session)) == 1
    team.cancel_invitation(db_session, invitation)
    db_session.commit()
    assert mail_jobs(db_session) == []  # the dead link never leaves


def test_an_invitation_email_already_sent_stays_in_the_record(
    as_admin, w, db_session, bound_database
):
    from config.jobs import run_due_jobs

    invite(as_admin, "partie@example.org")
    run_due_jobs(bound_database)  # development without SMTP: printed, done
    team.cancel_invitation(db_session, db_session.scalars(select(Invitation)).one())
    db_session.commit()
    assert [j.status for j in mail_jobs(db_session)] == [JobStatus.DONE]
