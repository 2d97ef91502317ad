"""District administration (`/admin`): who reaches it, what it does, and its audit log."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError

from campaigns.district import services as district
from campaigns.shared.models import (
    AuditEntry,
    InstanceAdmin,
    Invitation,
    Membership,
    Organization,
    OrganizationType,
    User,
)
from config.db import utcnow
from config.jobs import Job
from tests.conftest import csrf_token
from tests.journey_helpers import STUDENT_PASSWORD, student
from tests.orga_helpers import TEACHER_PASSWORD, sign_in, world

ADMIN_EMAIL = "district@example.org"


def instance_admin(db_session, email: str = ADMIN_EMAIL) -> User:
    """An instance administrator with a proven address and TEACHER_PASSWORD."""
    from campaigns.accounts import users

    user = users.create_user(
        db_session,
        first_name="Dominique",
        last_name="District",
        email=email,
        password=TEACHER_PASSWORD,
    )
    user.email_verified_at = utcnow()
    db_session.add(InstanceAdmin(user_id=user.id, granted_at=utcnow()))
    db_session.flush()
    return user


def admin_rules(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint.split(".", 1)[0] == "admin"]


def concrete(rule, ids) -> str:
    missing = set(rule.arguments) - set(ids)
    assert not missing, f"{rule.rule}: add an id for {missing} to this test"
    return rule.build({name: ids[name] for name in rule.arguments})[1]


def _page(response) -> str:
    """The page, its CSRF token aside (signed with the time)."""
    return re.sub(r'value="[^"]+"', "", response.get_data(as_text=True))


def entries(db_session, action: district.Action | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    if action is not None:
        query = query.where(AuditEntry.action == action.value)
    return list(db_session.scalars(query))


@pytest.fixture
def scene(db_session):
    w = world(db_session)
    admin = instance_admin(db_session)
    someone = student(db_session, 5)
    db_session.commit()
    return w, admin, someone


# -- who gets in ----------------------------------------------------------------------------------


def test_the_admin_section_has_the_expected_routes(app):
    endpoints = {rule.endpoint for rule in admin_rules(app)}
    assert {
        "admin.home",
        "admin.organizations",
        "admin.create",
        "admin.organization",
        "admin.edit",
        "admin.archive",
        "admin.unarchive",
        "admin.invite_admin",
        "admin.journal",
    } <= endpoints
    assert all(rule.rule.startswith("/admin") for rule in admin_rules(app))


@pytest.mark.parametrize("who", ["visitor", "student", "member", "school admin", "unproven"])
def test_everyone_but_instance_admins_gets_a_404_on_every_route_and_method(
    app, client, scene, db_session, who
):
    w, admin, someone = scene
    if who == "student":
        sign_in(client, someone.email, STUDENT_PASSWORD)
    elif who == "member":
        sign_in(client, w.member.email)
    elif who == "school admin":
        sign_in(client, w.admin.email)
    elif who == "unproven":  # an instance admin whose address is no longer proven
        admin.email_verified_at = None
        db_session.commit()
        sign_in(client, admin.email)
    ids = {"organization_id": w.school.id}
    unknown = client.get("/admin/nothing-here")
    assert unknown.status_code == 404
    for rule in admin_rules(app):
        path = concrete(rule, ids)
        # Every method, with and without a CSRF token: the same 404 as a page that does not exist
        # (no redirect to sign in, no 405, no CSRF 400 that would tell the section exists).
        for method in ("GET", "POST", "PUT", "DELETE"):
            response = client.open(path, method=method, data={"name": "X"})
            assert response.status_code == 404, f"{who}: {method} {path}"
            assert _page(response) == _page(unknown)
    assert db_session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    home = client.get("/", follow_redirects=True).get_data(as_text=True)  # where "/" leads
    assert "/admin" not in home


def test_instance_admins_reach_every_page(app, client, scene):
    w, admin, _ = scene
    sign_in(client, admin.email)
    home = client.get("/", follow_redirects=True).get_data(as_text=True)  # where "/" leads
    assert 'href="/admin"' in home  # the header link
    ids = {"organization_id": w.school.id}
    for rule in admin_rules(app):
        if "GET" not in rule.methods:
            continue
        response = client.get(concrete(rule, ids))
        assert response.status_code in (200, 302), rule.rule
        if response.status_code == 200:
            assert response.headers["X-Frame-Options"] == "DENY", rule.rule
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert client.get("/admin/organisations/999999").status_code == 404


def test_a_district_administrator_lands_on_the_administration(client, scene):
    _, admin, _ = scene
    token = csrf_token(client, "/connexion")
    response = client.post(
        "/connexion", data={"login": admin.email, "password": TEACHER_PASSWORD, "csrf_token": token}
    )
    assert response.headers["Location"] == "/admin"
    assert client.get("/").headers["Location"] == "/admin"


def test_posts_without_a_csrf_token_are_refused(app, client, scene, db_session):
    w, admin, _ = scene
    sign_in(client, admin.email)
    ids = {"organization_id": w.school.id}
    posts = [rule for rule in admin_rules(app) if "POST" in rule.methods]
    assert len(posts) >= 5
    for rule in posts:
        response = client.post(
            concrete(rule, ids), data={"name": "X", "type": "PRO", "email": "x@example.org"}
        )
        assert response.status_code == 400, rule.rule
    assert entries(db_session) == []
    assert db_session.get(Organization, w.school.id).archived_at is None


def test_the_pages_speak_english_too(client, scene):
    _, admin, _ = scene
    sign_in(client, admin.email)
    page = client.get("/admin/organisations?lang=en").get_data(as_text=True)
    assert "Organizations" in page and "Create an organization" in page
    assert "LTI" in client.get("/admin/plateformes-lti").get_data(as_text=True)


# -- organizations --------------------------------------------------------------------------------


def _post(client, path, data):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/admin/journal")})


def test_the_list_searches_by_name_and_uai_and_pages(client, scene, db_session):
    _, admin, _ = scene
    for n in range(30):
        db_session.add(Organization(name=f"Lycée {n:02d}", type=OrganizationType.SCO))
    db_session.commit()
    sign_in(client, admin.email)
    first = client.get("/admin/organisations?q=lycee").get_data(as_text=True)
    assert "0 organisation" in first or "Aucune" in first  # accents matter for this search
    page = client.get("/admin/organisations?q=Lycée").get_data(as_text=True)
    assert "30 organisations" in page and "Page 1 sur 2" in page
    second = client.get("/admin/organisations?q=Lycée&page=2").get_data(as_text=True)
    assert "Lycée 29" in second and "Lycée 00" not in second
    by_uai = client.get("/admin/organisations?q=0750202b").get_data(as_text=True)
    assert "1 organisation" in by_uai


def test_creating_an_organization_invites_its_first_admin_and_is_logged(client, scene, db_session):
    _, admin, _ = scene
    sign_in(client, admin.email)
    response = _post(
        client,
        "/admin/organisations/nouvelle",
        {"name": "  Lycée   Neuf ", "type": "SCO", "uai": "0751234x", "admin_email": "Chef@Ex.org"},
    )
    assert response.status_code == 303
    organization = db_session.scalars(select(Organization).filter_by(uai="0751234X")).one()
    assert organization.name == "Lycée Neuf"
    assert response.headers["Location"].endswith(f"/admin/organisations/{organization.id}")
    # As `parcours org create`: nobody is a member; an invitation was mailed.
    assert (
        db_session.scalar(
            select(func.count()).select_from(Membership).filter_by(organization_id=organization.id)
        )
        == 0
    )
    [invitation] = db_session.scalars(select(Invitation).filter_by(organization_id=organization.id))
    assert invitation.email == "chef@ex.org" and invitation.role.value == "ADMIN"
    assert db_session.scalar(select(func.count()).select_from(Job)) == 1
    [entry] = entries(db_session)
    assert entry.action == "organization.create" and entry.actor_user_id == admin.id
    assert entry.object_id == str(organization.id) and "Lycée Neuf" in entry.object_label
    assert entry.details["admin_email"] == "chef@ex.org"
    assert entry.request_id and len(entry.request_id) >= 16
    assert "token" not in str(entry.details)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "chef@ex.org" in page and "Invitations d’administrateur en attente" in page


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "uai": ""}, "name", "obligatoire"),
        ({"uai": "12AB"}, "uai", "7 chiffres suivis d’une lettre"),
        ({"type": "PRO", "uai": "0751234A"}, "uai", "Seuls les établissements scolaires"),
        ({"uai": "0750201a"}, "uai", "Une autre organisation a déjà ce code UAI"),
        ({"admin_email": "pas-une-adresse"}, "admin_email", "adresse e-mail valide"),
        ({"type": "XYZ"}, "type", "Choisissez un type"),
    ],
)
def test_creation_errors_are_shown_on_their_field(client, scene, db_session, data, field, message):
    _, admin, _ = scene
    sign_in(client, admin.email)
    before = db_session.scalar(select(func.count()).select_from(Organization))
    form = {"name": "Nouveau", "type": "SCO", "uai": "", "admin_email": "a@b.fr", **data}
    response = _post(client, "/admin/organisations/nouvelle", form)
    assert response.status_code in (400, 409)
    page = response.get_data(as_text=True)
    assert message in page
    assert f'id="{field}-error"' in page and 'aria-invalid="true"' in page
    assert db_session.scalar(select(func.count()).select_from(Organization)) == before
    assert (
        entries(db_session) == [] and db_session.scalar(select(func.count()).select_from(Job)) == 0
    )


def test_a_name_without_uai_is_taken_once(client, scene, db_session):
    _, admin, _ = scene
    db_session.add(Organization(name="Université Test", type=OrganizationType.SUP))
    db_session.commit()
    sign_in(client, admin.email)
    response = _post(
        client,
        "/admin/organisations/nouvelle",
        {"name": "Université Test", "type": "SUP", "uai": "", "admin_email": "a@b.fr"},
    )
    assert response.status_code == 409
    assert "porte déjà ce nom" in response.get_data(as_text=True)


def test_editing_an_organization_is_logged_with_what_changed(client, scene, db_session):
    w, admin, _ = scene
    sign_in(client, admin.email)
    path = f"/admin/organisations/{w.school.id}/modifier"
    assert w.school.name in client.get(path).get_data(as_text=True)
    response = _post(client, path, {"name": "Collège Renommé", "type": "SCO", "uai": "0750209z"})
    assert response.status_code == 303
    db_session.refresh(w.school)
    assert (w.school.name, w.school.uai) == ("Collège Renommé", "0750209Z")
    [entry] = entries(db_session, district.Action.ORGANIZATION_UPDATE)
    assert entry.details["changes"]["uai"] == ["0750201A", "0750209Z"]
    assert entry.details["changes"]["name"][1] == "Collège Renommé"
    # Saving the same values changes nothing and logs nothing.
    assert _post(client, path, {"name": "Collège Renommé", "type": "SCO", "uai": "0750209Z"})
    assert len(entries(db_session)) == 1


@pytest.mark.parametrize(
    ("data", "message", "status"),
    [
        ({"uai": "0750202B"}, "Une autre organisation a déjà ce code UAI", 409),
        ({"uai": "75020"}, "7 chiffres suivis d’une lettre", 400),
        ({"type": "SUP"}, "Seuls les établissements scolaires", 400),
        ({"name": "   "}, "obligatoire", 400),
    ],
)
def test_edit_errors_change_nothing(client, scene, db_session, data, message, status):
    w, admin, _ = scene
    sign_in(client, admin.email)
    form = {"name": "Collège A", "type": "SCO", "uai": "0750201A", **data}
    response = _post(client, f"/admin/organisations/{w.school.id}/modifier", form)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Organization, w.school.id).uai == "0750201A"
    assert entries(db_session) == []


def test_archiving_asks_first_then_archives_and_unarchives(client, scene, db_session):
    w, admin, _ = scene
    sign_in(client, admin.email)
    question = client.get(f"/admin/organisations/{w.school.id}/archiver")
    assert question.status_code == 200
    page = question.get_data(as_text=True)
    assert "Archiver l’organisation" in page and "Confirmer" in page
    db_session.refresh(w.school)
    assert w.school.archived_at is None  # asking changes nothing
    response = _post(client, f"/admin/organisations/{w.school.id}/archiver", {})
    assert response.status_code == 303
    db_session.refresh(w.school)
    assert w.school.archived_at is not None
    # Its members no longer reach it.
    other = client.application.test_client()
    sign_in(other, w.member.email)
    assert other.get("/orga/campagnes").status_code == 403
    # Inviting into an archived organization is refused.
    refused = _post(
        client, f"/admin/organisations/{w.school.id}/administrateurs", {"email": "x@example.org"}
    )
    assert refused.status_code == 409
    assert _post(client, f"/admin/organisations/{w.school.id}/desarchiver", {}).status_code == 303
    db_session.refresh(w.school)
    assert w.school.archived_at is None
    actions = [e.action for e in entries(db_session)]
    assert actions == ["organization.archive", "organization.unarchive"]


def test_inviting_an_admin_sends_an_invitation_and_grants_nothing(client, scene, db_session):
    w, admin, someone = scene
    someone.email_verified_at = utcnow()
    db_session.commit()
    sign_in(client, admin.email)
    path = f"/admin/organisations/{w.school.id}/administrateurs"
    response = _post(client, path, {"email": someone.email.upper()})
    assert response.status_code == 303
    assert (
        db_session.scalar(
            select(Membership.id).filter_by(organization_id=w.school.id, user_id=someone.id)
        )
        is None
    )
    [invitation] = db_session.scalars(
        select(Invitation).filter_by(organization_id=w.school.id, email=someone.email)
    )
    assert invitation.role.value == "ADMIN" and invitation.invited_by_id == admin.id
    again = _post(client, path, {"email": someone.email})
    assert again.status_code == 303
    logged = entries(db_session, district.Action.ORGANIZATION_INVITE_ADMIN)
    assert [e.details["outcome"] for e in logged] == ["invited", "renewed"]
    assert all(e.details["invitation_id"] == invitation.id for e in logged)
    # Someone already in the team is left as they are, and nothing is logged.
    member = _post(client, path, {"email": w.member.email})
    assert member.status_code == 303
    assert "déjà membre" in client.get(member.headers["Location"]).get_data(as_text=True)
    assert len(entries(db_session)) == 2
    bad = _post(client, path, {"email": "nope"})
    assert bad.status_code == 400 and "adresse e-mail valide" in bad.get_data(as_text=True)
    # The page lists the organization's admins and the pending admin invitation.
    page = client.get(f"/admin/organisations/{w.school.id}").get_data(as_text=True)
    assert w.admin.email in page and someone.email in page


def test_connector_sections_are_the_connectors_own(client, scene):
    _, admin, _ = scene
    sign_in(client, admin.email)
    lti = client.get("/admin/plateformes-lti").get_data(as_text=True)
    idp = client.get("/admin/fournisseurs-identite").get_data(as_text=True)
    assert "pas encore disponible" not in lti  # the LTI tool's section (tests/test_lti_admin.py)
    assert "pas encore disponible" not in idp  # the SAML connector's (tests/test_saml_admin.py)
    assert "Aucun fournisseur d’identité" in idp


# -- the audit log --------------------------------------------------------------------------------


def test_the_journal_lists_filters_and_pages(client, scene, db_session):
    w, admin, _ = scene
    actor = district.Actor.of(admin, request_id="req-1")
    for n in range(55):
        district.set_archived(db_session, w.other, n % 2 == 0, actor=actor)
    district.record(
        db_session,
        district.COMMAND_LINE,
        district.Action.ADMIN_GRANT,
        object_type=district.ObjectType.USER,
        object_id=admin.id,
        object_label=admin.email,
    )
    db_session.commit()
    sign_in(client, admin.email)
    page = client.get("/admin/journal").get_data(as_text=True)
    assert "56 entrées" in page and "Page 1 sur 2" in page and "Ligne de commande" in page
    only = client.get("/admin/journal?action=instance_admin.grant").get_data(as_text=True)
    assert "1 entrée" in only
    archived = client.get("/admin/journal?action=organization.archive").get_data(as_text=True)
    assert "28 entrées" in archived
    by_actor = client.get("/admin/journal?acteur=DISTRICT@example").get_data(as_text=True)
    assert "55 entrées" in by_actor
    by_object = client.get(f"/admin/journal?objet=organization&objet_id={w.other.id}")
    assert "55 entrées" in by_object.get_data(as_text=True)
    none = client.get(f"/admin/journal?objet=organization&objet_id={w.school.id}")
    assert "Aucune entrée" in none.get_data(as_text=True)
    second = client.get("/admin/journal?action=organization.archive&page=2").get_data(as_text=True)
    assert "Page 2 sur 1" not in second and "28 entrées" in second
    # Unknown filter values are ignored, not errors.
    assert client.get("/admin/journal?action=drop&objet=table&page=x").status_code == 200


def test_entries_survive_the_deletion_of_the_object_and_of_the_actor(db_session):
    other = instance_admin(db_session, "other@example.org")
    organization = Organization(name="Éphémère", type=OrganizationType.PRO)
    db_session.add(organization)
    db_session.flush()
    district.set_archived(db_session, organization, True, actor=district.Actor.of(other))
    db_session.execute(delete(Organization).where(Organization.id == organization.id))
    db_session.execute(delete(User).where(User.id == other.id))
    db_session.flush()
    db_session.expire_all()
    [entry] = entries(db_session)
    assert entry.actor_user_id is None and "other@example.org" in entry.actor_label
    assert entry.object_id == str(organization.id) and entry.object_label == "Éphémère"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET action = 'organization.create'",
        "UPDATE audit_entries SET actor_label = 'someone else'",
        "DELETE FROM audit_entries",
    ],
)
def test_the_database_keeps_the_log_append_only(db_session, statement):
    admin = instance_admin(db_session)
    district.record(
        db_session,
        district.Actor.of(admin),
        district.Action.ORGANIZATION_ARCHIVE,
        object_type=district.ObjectType.ORGANIZATION,
        object_id=1,
        object_label="X",
    )
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text(statement))
    assert len(entries(db_session)) == 1


def test_the_role_is_read_with_the_user_and_follows_grants_and_revocations(db_session):
    admin = instance_admin(db_session)
    other = instance_admin(db_session, "second@example.org")
    assert district.is_instance_admin(admin) and district.is_instance_admin(other)
    district.revoke(db_session, other.email, actor=district.Actor.of(admin))
    assert not district.is_instance_admin(other)
    district.grant(db_session, other.email, actor=district.Actor.of(admin))
    assert district.is_instance_admin(other)
    other.email_verified_at = None  # an address no longer proven opens nothing
    assert not district.is_instance_admin(other)
    assert not district.is_instance_admin(None)
