"""The "Plateformes LTI" section of `/admin`: who reaches it, registering and changing platforms
and deployments, activation, what the LMS needs of us, activity, grades to resend, audit log."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from campaigns.shared.models import AuditEntry, Organization
from config.app import create_app
from config.db import utcnow
from config.jobs import Job, JobStatus
from config.security import frameable
from lti_tool import grades
from lti_tool.models import (
    GradeStatus,
    LtiDeployment,
    LtiEvent,
    LtiEventKind,
    LtiLearner,
    LtiPlatform,
    LtiResourceLink,
)
from tests.conftest import csrf_token
from tests.journey_helpers import STUDENT_PASSWORD, student
from tests.lti_platform import SCORE_SCOPE, FakePlatform
from tests.orga_helpers import sign_in, world
from tests.test_admin import instance_admin

CANVAS = "https://canvas.instructure.example"
NEW_PLATFORM = {
    "name": "Canvas du district",
    "issuer": CANVAS,
    "client_id": "10000000000042",
    "auth_login_url": f"{CANVAS}/api/lti/authorize_redirect",
    "auth_token_url": f"{CANVAS}/login/oauth2/token",
    "key_set_url": f"{CANVAS}/api/lti/security/jwks",
    "audience": "",
    "frame_origins": "https://lycee.instructure.example",
    "deployment_id": "12:abcdef",
}


@pytest.fixture
def app(settings, bound_database):
    """The app, with a page LMS may frame (to watch the framing origins)."""
    app = create_app(settings, database=bound_database)

    @app.get("/embedded")
    @frameable
    def embedded():
        return "inside the LMS"

    return app


def _failed_learner(db_session, w, deployment, *, sub="s-1", status=GradeStatus.FAILED):
    link = db_session.scalars(
        select(LtiResourceLink).filter_by(deployment_id=deployment.id, resource_link_id="rl-1")
    ).one_or_none()
    if link is None:
        link = LtiResourceLink(
            deployment_id=deployment.id,
            resource_link_id="rl-1",
            campaign_id=w.campaign.id,
            lineitem_url=FakePlatform().lineitem_url(),
            ags_scopes=[SCORE_SCOPE],
        )
        db_session.add(link)
        db_session.flush()
    learner = LtiLearner(
        resource_link_id=link.id,
        user_id=student(db_session, 100 + int(sub.removeprefix("s-"))).id,
        sub=sub,
        grade_status=status,
        last_error="HTTP 400: user not gradable",
    )
    db_session.add(learner)
    db_session.flush()
    return learner


@pytest.fixture
def scene(db_session):
    w = world(db_session)
    admin = instance_admin(db_session)
    platform = FakePlatform().register(db_session, w.school, name="Moodle du collège")
    learner = _failed_learner(db_session, w, platform.deployments[0])
    db_session.commit()
    return w, admin, platform, learner


def entries(db_session, action: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list(db_session.scalars(query))


def rules(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("lti_admin.")]


def concrete(rule, ids) -> str:
    missing = set(rule.arguments) - set(ids)
    assert not missing, f"{rule.rule}: add an id for {missing} to this test"
    return rule.build({name: ids[name] for name in rule.arguments})[1]


def _ids(platform, learner):
    return {
        "platform_id": platform.id,
        "deployment_id": platform.deployments[0].id,
        "learner_id": learner.id,
    }


def _page(response) -> str:
    return re.sub(r'value="[^"]+"', "", response.get_data(as_text=True))


def _post(client, path, data=None):
    token = csrf_token(client, "/admin/plateformes-lti/nouvelle")
    return client.post(path, data={**(data or {}), "csrf_token": token})


def _text(response) -> str:
    return response.get_data(as_text=True)


def _follow(client, response) -> str:
    assert response.status_code == 303, _text(response)
    return _text(client.get(response.headers["Location"]))


# -- who gets in ----------------------------------------------------------------------------------


def test_the_section_has_its_routes_under_admin_and_in_the_navigation(app, client, scene):
    endpoints = {rule.endpoint for rule in rules(app)}
    assert {
        "lti_admin.platforms",
        "lti_admin.registration_url",
        "lti_admin.create",
        "lti_admin.platform",
        "lti_admin.edit",
        "lti_admin.activate",
        "lti_admin.deactivate",
        "lti_admin.add_deployment",
        "lti_admin.remove_deployment",
        "lti_admin.resend",
        "lti_admin.resend_all",
    } <= endpoints
    assert all(rule.rule.startswith("/admin/plateformes-lti") for rule in rules(app))
    _, admin, _, _ = scene
    sign_in(client, admin.email)
    page = _text(client.get("/admin/organisations"))
    assert 'href="/admin/plateformes-lti"' in page
    lti = _text(client.get("/admin/plateformes-lti"))
    assert 'href="/admin/plateformes-lti" aria-current="page"' in lti


@pytest.mark.parametrize("who", ["visitor", "student", "member", "school admin"])
def test_everyone_but_instance_admins_gets_a_404_on_every_route_and_method(
    app, client, scene, db_session, who
):
    w, _, platform, learner = scene
    if who == "student":
        someone = student(db_session, 9)
        db_session.commit()
        sign_in(client, someone.email, STUDENT_PASSWORD)
    elif who == "member":
        sign_in(client, w.member.email)
    elif who == "school admin":
        sign_in(client, w.admin.email)
    unknown = client.get("/admin/nothing-here")
    assert unknown.status_code == 404
    token = csrf_token(client, "/connexion" if who == "visitor" else "/campagnes")
    for rule in rules(app):
        path = concrete(rule, _ids(platform, learner))
        for method in ("GET", "POST", "PUT", "DELETE"):
            for data in ({}, {"csrf_token": token, **NEW_PLATFORM}):
                response = client.open(path, method=method, data=data)
                assert response.status_code == 404, f"{who}: {method} {path}"
                assert _page(response) == _page(unknown)
    assert entries(db_session) == []
    assert db_session.scalar(select(func.count()).select_from(LtiPlatform)) == 1
    db_session.refresh(platform)
    assert platform.is_active and len(platform.deployments) == 1
    db_session.refresh(learner)
    assert learner.grade_status is GradeStatus.FAILED


def test_instance_admins_reach_every_page(app, client, scene):
    _, admin, platform, learner = scene
    sign_in(client, admin.email)
    for rule in rules(app):
        if "GET" not in rule.methods:
            continue
        response = client.get(concrete(rule, _ids(platform, learner)))
        assert response.status_code in (200, 303), rule.rule
        if response.status_code == 200:
            assert response.headers["X-Frame-Options"] == "DENY", rule.rule
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        else:  # the forms' addresses, opened: back to the platform's page
            assert urlsplit(response.headers["Location"]).path == (
                f"/admin/plateformes-lti/{platform.id}"
            )


def test_unknown_ids_are_404(client, scene, db_session):
    w, admin, platform, _ = scene
    other = FakePlatform(issuer="https://autre.lycee.example").register(db_session, w.other)
    other_learner = _failed_learner(db_session, w, other.deployments[0], sub="s-2")
    db_session.commit()
    sign_in(client, admin.email)
    base = f"/admin/plateformes-lti/{platform.id}"
    for path in (
        "/admin/plateformes-lti/999999",
        "/admin/plateformes-lti/999999/modifier",
        "/admin/plateformes-lti/999999/activer",
        "/admin/plateformes-lti/999999/desactiver",
        "/admin/plateformes-lti/999999/deploiements",
        "/admin/plateformes-lti/999999/notes/renvoyer",
        f"{base}/deploiements/999999/retirer",
        f"{base}/deploiements/{other.deployments[0].id}/retirer",  # another platform's
        f"{base}/notes/999999/renvoyer",
        f"{base}/notes/{other_learner.id}/renvoyer",
    ):
        assert client.get(path).status_code == 404, path
        if path != "/admin/plateformes-lti/999999":  # a page, not a form
            assert _post(client, path).status_code == 404, path
    assert entries(db_session) == []
    assert db_session.get(LtiDeployment, other.deployments[0].id) is not None


def test_posts_without_a_csrf_token_are_refused(app, client, scene, db_session, monkeypatch):
    _, admin, platform, learner = scene
    calls = []
    monkeypatch.setattr(grades, "resend", lambda session, learner_id: calls.append(learner_id))
    sign_in(client, admin.email)
    posts = [rule for rule in rules(app) if "POST" in rule.methods]
    assert len(posts) == 8
    for rule in posts:
        path = concrete(rule, _ids(platform, learner))
        response = client.post(path, data={**NEW_PLATFORM, "organization_id": "1"})
        assert response.status_code == 400, rule.rule
        bad = client.post(path, data={**NEW_PLATFORM, "csrf_token": "forged"})
        assert bad.status_code == 400, rule.rule
    assert entries(db_session) == [] and calls == []
    assert db_session.scalar(select(func.count()).select_from(LtiPlatform)) == 1
    db_session.refresh(platform)
    assert platform.is_active and platform.name == "Moodle du collège"
    assert len(platform.deployments) == 1


# -- the list -------------------------------------------------------------------------------------


def test_the_list_shows_platforms_their_state_deployments_and_last_launch(
    client, scene, db_session
):
    w, admin, platform, _ = scene
    pending = FakePlatform(issuer="https://pending.lms.example").register(
        db_session, w.other, active=False
    )
    db_session.add(
        LtiEvent(platform_id=platform.id, kind=LtiEventKind.LAUNCH, summary="apprenant x")
    )
    db_session.commit()
    sign_in(client, admin.email)
    page = _text(client.get("/admin/plateformes-lti"))
    assert "2 plateformes" in page and "Ajouter une plateforme" in page
    assert "Moodle du collège" in page and "https://moodle.lycee.example" in page
    assert "https://pending.lms.example" in page and "parcours-client" in page
    assert page.count("En attente d’activation") == 1
    assert w.school.name in page and w.other.name in page and "déploiement 1" in page
    row = page[page.index("Moodle du collège") : page.index("</tr>", page.index("Moodle du"))]
    assert re.search(r"\d{2}/\d{2}/\d{4}", row)  # its last launch
    pending_row = page[page.index("https://pending.lms.example") :]
    pending_row = pending_row[: pending_row.index("</tr>")]
    assert "aucun" in pending_row
    assert f'href="/admin/plateformes-lti/{pending.id}"' in page


def test_an_empty_list_says_so(client, db_session):
    admin = instance_admin(db_session)
    db_session.commit()
    sign_in(client, admin.email)
    page = _text(client.get("/admin/plateformes-lti"))
    assert "Aucune plateforme n’est enregistrée." in page and "<table" not in page


# -- adding a platform ----------------------------------------------------------------------------


def test_adding_a_platform_registers_it_logs_it_and_lets_it_frame_parcours(
    client, scene, db_session
):
    w, admin, _, _ = scene
    sign_in(client, admin.email)
    assert "lycee.instructure" not in client.get("/embedded").headers["Content-Security-Policy"]
    form = _text(client.get("/admin/plateformes-lti/nouvelle"))
    assert (
        "http://127.0.0.1:5000/lti/login" in form and "http://127.0.0.1:5000/lti/jwks.json" in form
    )
    assert f'<option value="{w.school.id}"' in form
    response = _post(
        client, "/admin/plateformes-lti/nouvelle", {**NEW_PLATFORM, "organization_id": w.other.id}
    )
    platform = db_session.scalars(select(LtiPlatform).filter_by(issuer=CANVAS)).one()
    assert response.headers["Location"].endswith(f"/admin/plateformes-lti/{platform.id}")
    assert platform.is_active and platform.client_id == "10000000000042"
    assert platform.audience is None
    assert platform.frame_origins == "https://lycee.instructure.example"
    [deployment] = platform.deployments
    assert deployment.deployment_id == "12:abcdef" and deployment.organization_id == w.other.id
    page = _follow(client, response)
    assert "Canvas du district est enregistrée" in page and w.other.name in page
    [entry] = entries(db_session)
    assert entry.action == "lti.platform.create" and entry.actor_user_id == admin.id
    assert entry.object_type == "lti_platform" and entry.object_id == str(platform.id)
    assert entry.object_label == "Canvas du district" and entry.request_id
    assert entry.details["deployment_id"] == "12:abcdef"
    assert entry.details["organization_id"] == w.other.id
    # Framed at once by its origins (the cached list was forgotten).
    csp = client.get("/embedded").headers["Content-Security-Policy"]
    assert "https://lycee.instructure.example" in csp and CANVAS in csp
    journal = _text(client.get(f"/admin/journal?objet=lti_platform&objet_id={platform.id}"))
    assert "Plateforme LTI enregistrée" in journal and "Plateforme LTI" in journal


@pytest.mark.parametrize(
    ("data", "field", "message", "status"),
    [
        ({"issuer": ""}, "issuer", "Saisissez l’émetteur", 400),
        ({"issuer": "moodle.lycee.fr"}, "issuer", "Saisissez l’émetteur", 400),
        ({"client_id": "   "}, "client_id", "identifiant client", 400),
        ({"client_id": "x" * 256}, "client_id", "255 caractères au plus", 400),
        ({"name": "n" * 256}, "name", "limité à 255 caractères", 400),
        ({"auth_login_url": "http://canvas.example/auth"}, "auth_login_url", "https://", 400),
        ({"auth_token_url": "pas une adresse"}, "auth_token_url", "https://", 400),
        ({"key_set_url": ""}, "key_set_url", "https://", 400),
        ({"frame_origins": "https://*.example"}, "frame_origins", "sans astérisque", 400),
        ({"deployment_id": ""}, "deployment_id", "identifiant de déploiement", 400),
        ({"organization_id": ""}, "organization_id", "Choisissez une des organisations", 400),
        ({"organization_id": "999999"}, "organization_id", "Choisissez une des organ", 400),
        (
            {"issuer": "https://moodle.lycee.example", "client_id": "parcours-client"},
            "client_id",
            "Une plateforme avec cet émetteur et cet identifiant client est déjà enregistrée.",
            409,
        ),
        (
            {"organization_id": "archived"},
            "organization_id",
            "Cette organisation est archivée",
            409,
        ),
    ],
)
def test_errors_are_shown_on_their_field(client, scene, db_session, data, field, message, status):
    w, admin, _, _ = scene
    if data.get("organization_id") == "archived":
        w.other.archived_at = utcnow()
        db_session.commit()
        data = {"organization_id": str(w.other.id)}
    sign_in(client, admin.email)
    form = {**NEW_PLATFORM, "organization_id": str(w.school.id), **data}
    response = _post(client, "/admin/plateformes-lti/nouvelle", form)
    assert response.status_code == status
    page = _text(response)
    assert message in page
    assert f'id="{field}-error"' in page and 'role="alert" id="form-errors"' in page
    assert f'<a href="#{field}">' in page  # the summary leads to the field
    tag = re.search(rf'<(input|select) id="{field}"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in tag and f"{field}-error" in tag
    assert "Canvas du district" in page or field == "name"  # what was typed stays
    assert db_session.scalar(select(func.count()).select_from(LtiPlatform)) == 1
    assert entries(db_session) == []


def test_every_missing_field_is_named_at_once(client, scene, db_session):
    _, admin, _, _ = scene
    sign_in(client, admin.email)
    response = _post(client, "/admin/plateformes-lti/nouvelle", {"name": "Vide"})
    assert response.status_code == 400
    page = _text(response)
    assert "Le formulaire contient 7 erreurs" in page
    for field in (
        "issuer",
        "client_id",
        "auth_login_url",
        "auth_token_url",
        "key_set_url",
        "deployment_id",
        "organization_id",
    ):
        assert f'id="{field}-error"' in page, field


def test_archived_organizations_are_not_offered(client, scene, db_session):
    w, admin, _, _ = scene
    w.other.archived_at = utcnow()
    db_session.commit()
    sign_in(client, admin.email)
    form = _text(client.get("/admin/plateformes-lti/nouvelle"))
    assert f'<option value="{w.school.id}"' in form
    assert f'<option value="{w.other.id}"' not in form


# -- one platform ---------------------------------------------------------------------------------


def test_the_platform_page_shows_its_fields_tool_urls_deployments_and_activity(
    client, scene, db_session
):
    w, admin, platform, learner = scene
    for n in range(25):
        db_session.add(
            LtiEvent(
                platform_id=platform.id,
                kind=LtiEventKind.REFUSED if n % 2 else LtiEventKind.LAUNCH,
                summary=f"évènement numéro {n:02d}",
                created_at=utcnow().replace(microsecond=0).replace(second=n % 60),
            )
        )
    db_session.add(  # the learner's grade job, given up on 3 March
        Job(
            kind=grades.SCORE_JOB,
            payload={"lti_learner_id": learner.id},
            status=JobStatus.FAILED,
            dedupe_key=grades.dedupe_key(learner.id),
            finished_at=dt.datetime(2026, 3, 3, 9, 30, tzinfo=dt.UTC),
        )
    )
    db_session.commit()
    sign_in(client, admin.email)
    page = _text(client.get(f"/admin/plateformes-lti/{platform.id}"))
    assert "03/03/2026 10:30" in page  # when it failed, in Paris time
    for value in (
        "Moodle du collège",
        "https://moodle.lycee.example",
        "parcours-client",
        platform.auth_login_url,
        platform.auth_token_url,
        platform.key_set_url,
        "http://127.0.0.1:5000/lti/login",
        "http://127.0.0.1:5000/lti/launch",
        "http://127.0.0.1:5000/lti/jwks.json",
        w.school.name,
        "Journal de cette plateforme",
    ):
        assert value in page, value
    # The 20 latest events, newest first, with their kind.
    shown = re.findall(r"évènement numéro (\d\d)", page)
    assert shown == [f"{n:02d}" for n in range(24, 4, -1)]
    assert "Lancement" in page and "Refus" in page
    # The failed grade, with a reference (not the learner's LTI id) and its campaign.
    assert "Notes non reçues par la plateforme" in page and "user not gradable" in page
    assert w.campaign.name in page and "Tout renvoyer" in page and "Renvoyer" in page
    assert "s-1" not in page.replace("class=", "")  # the sub is not shown as such


def _edit_form(platform, **changes):
    """The edit form of `platform` as the page fills it, with `changes`."""
    return {
        "name": platform.name,
        "issuer": platform.issuer,
        "client_id": platform.client_id,
        "auth_login_url": platform.auth_login_url,
        "auth_token_url": platform.auth_token_url,
        "key_set_url": platform.key_set_url,
        "audience": "",
        "frame_origins": "",
        **changes,
    }


def test_editing_a_platform_logs_what_changed(client, scene, db_session):
    _, admin, platform, _ = scene
    sign_in(client, admin.email)
    path = f"/admin/plateformes-lti/{platform.id}/modifier"
    form = _text(client.get(path))
    assert 'value="Moodle du collège"' in form and platform.key_set_url in form
    current = _edit_form(platform, name="Moodle du collège")
    same = _post(client, path, current)
    assert "Aucune modification." in _follow(client, same)
    assert entries(db_session) == []
    changed = _post(
        client, path, {**current, "name": "Moodle", "frame_origins": "https://a.example"}
    )
    assert "Moodle est modifiée" in _follow(client, changed)
    db_session.refresh(platform)
    assert platform.name == "Moodle" and platform.frame_origins == "https://a.example"
    [entry] = entries(db_session)
    assert entry.action == "lti.platform.update" and entry.object_label == "Moodle"
    assert entry.details["changes"] == {
        "name": ["Moodle du collège", "Moodle"],
        "frame_origins": ["", "https://a.example"],
    }
    assert "https://a.example" in client.get("/embedded").headers["Content-Security-Policy"]
    bad = _post(client, path, {**current, "key_set_url": "ftp://moodle.example/certs"})
    assert bad.status_code == 400 and 'id="key_set_url-error"' in _text(bad)


def test_an_administrator_declares_a_platforms_names_reliable(client, scene, db_session):
    _, admin, platform, _ = scene
    sign_in(client, admin.email)
    path = f"/admin/plateformes-lti/{platform.id}/modifier"
    form = _text(client.get(path))
    assert 'id="match_learners-non" name="match_learners" value="non" checked' in form
    fields = _edit_form(platform, match_learners="oui")
    page = _follow(client, _post(client, path, fields))
    assert "oui : date de naissance demandée au premier lancement" in page
    db_session.refresh(platform)
    assert platform.match_learners is True
    [entry] = entries(db_session)
    assert entry.details["changes"] == {"match_learners": [False, True]}


def test_editing_into_another_platforms_issuer_and_client_id_is_refused(client, scene, db_session):
    w, admin, platform, _ = scene
    other = FakePlatform(issuer="https://autre.lycee.example").register(db_session, w.other)
    db_session.commit()
    sign_in(client, admin.email)
    response = _post(
        client,
        f"/admin/plateformes-lti/{other.id}/modifier",
        {
            "issuer": platform.issuer,
            "client_id": platform.client_id,
            "auth_login_url": other.auth_login_url,
            "auth_token_url": other.auth_token_url,
            "key_set_url": other.key_set_url,
        },
    )
    assert response.status_code == 409
    assert "déjà enregistrée" in _text(response) and 'id="client_id-error"' in _text(response)
    db_session.refresh(other)
    assert other.issuer == "https://autre.lycee.example"
    assert entries(db_session) == []


def test_deactivating_and_activating_ask_first_are_logged_and_change_framing(
    client, scene, db_session
):
    _, admin, platform, _ = scene
    sign_in(client, admin.email)
    assert "moodle.lycee.example" in client.get("/embedded").headers["Content-Security-Policy"]
    base = f"/admin/plateformes-lti/{platform.id}"
    question = _text(client.get(f"{base}/desactiver"))
    assert "Désactiver la plateforme Moodle du collège\u202f?" in question
    assert 'aria-describedby="question consequences"' in question and "Confirmer" in question
    assert f'action="{base}/desactiver"' in question
    db_session.refresh(platform)
    assert platform.is_active  # asking changes nothing
    page = _follow(client, _post(client, f"{base}/desactiver"))
    assert "est désactivée" in page and "en attente d’activation" in page
    db_session.refresh(platform)
    assert not platform.is_active
    assert "moodle" not in client.get("/embedded").headers["Content-Security-Policy"]
    # Again: nothing happens, nothing is logged; the question says so.
    _post(client, f"{base}/desactiver")
    assert "déjà désactivée" in _text(client.get(f"{base}/desactiver"))
    activation = _text(client.get(f"{base}/activer"))
    assert "Activer la plateforme" in activation and "déploiement 1" in activation
    assert "est active" in _follow(client, _post(client, f"{base}/activer"))
    db_session.refresh(platform)
    assert platform.is_active
    assert "moodle.lycee.example" in client.get("/embedded").headers["Content-Security-Policy"]
    assert [e.action for e in entries(db_session)] == [
        "lti.platform.deactivate",
        "lti.platform.activate",
    ]
    assert all(e.object_id == str(platform.id) for e in entries(db_session))


# -- deployments ----------------------------------------------------------------------------------


def test_adding_a_deployment_maps_it_to_an_organization(client, scene, db_session):
    w, admin, platform, _ = scene
    sign_in(client, admin.email)
    path = f"/admin/plateformes-lti/{platform.id}/deploiements"
    response = _post(client, path, {"deployment_id": "7", "organization_id": w.other.id})
    assert "Le déploiement 7 est ajouté" in _follow(client, response)
    deployment = db_session.scalars(
        select(LtiDeployment).filter_by(platform_id=platform.id, deployment_id="7")
    ).one()
    assert deployment.organization_id == w.other.id
    [entry] = entries(db_session)
    assert entry.action == "lti.deployment.create" and entry.object_id == str(platform.id)
    assert entry.details == {
        "deployment_id": "7",
        "organization_id": w.other.id,
        "organization": w.other.name,
    }
    duplicate = _post(client, path, {"deployment_id": "7", "organization_id": w.school.id})
    assert duplicate.status_code == 409
    assert "déjà enregistré pour cette plateforme" in _text(duplicate)
    assert 'id="deployment_id-error"' in _text(duplicate)
    empty = _post(client, path, {"deployment_id": "", "organization_id": ""})
    assert empty.status_code == 400 and "Le formulaire contient 2 erreurs" in _text(empty)
    w.other.archived_at = utcnow()
    db_session.commit()
    archived = _post(client, path, {"deployment_id": "8", "organization_id": w.other.id})
    assert archived.status_code == 409 and "archivée" in _text(archived)
    assert len(entries(db_session)) == 1


def test_removing_a_deployment_asks_first_says_what_goes_and_is_logged(client, scene, db_session):
    w, admin, platform, learner = scene
    deployment = platform.deployments[0]
    deployment_id, link_id, learner_id = deployment.id, learner.resource_link_id, learner.id
    sign_in(client, admin.email)
    path = f"/admin/plateformes-lti/{platform.id}/deploiements/{deployment.id}/retirer"
    question = _text(client.get(path))
    assert "Retirer le déploiement 1 de Moodle du collège\u202f?" in question
    assert "Son lien de cours sera supprimé." in question
    assert "Le suivi de la note de 1 apprenant sera aussi supprimé" in question
    assert w.school.name in question and 'class="button danger"' in question
    assert db_session.get(LtiDeployment, deployment.id) is not None
    page = _follow(client, _post(client, path))
    assert "Le déploiement 1 est retiré." in page and "Aucun déploiement" in page
    db_session.expire_all()
    assert db_session.get(LtiDeployment, deployment_id) is None
    assert db_session.get(LtiResourceLink, link_id) is None
    assert db_session.get(LtiLearner, learner_id) is None
    assert db_session.get(Organization, w.school.id) is not None
    [entry] = entries(db_session)
    assert entry.action == "lti.deployment.delete"
    assert entry.details == {
        "deployment_id": "1",
        "organization_id": w.school.id,
        "organization": w.school.name,
    }
    assert client.get(path).status_code == 404


# -- grades ---------------------------------------------------------------------------------------


@pytest.fixture
def resends(monkeypatch):
    """`grades.resend`, recorded: it queues (True) unless the learner id is in `refused`."""
    calls: list[int] = []
    refused: set[int] = set()

    def resend(session, lti_learner_id):
        calls.append(lti_learner_id)
        return lti_learner_id not in refused

    monkeypatch.setattr(grades, "resend", resend)
    return calls, refused


def test_renvoyer_sends_one_grade_again_and_is_logged(client, scene, db_session, resends):
    _, admin, platform, learner = scene
    calls, refused = resends
    sign_in(client, admin.email)
    path = f"/admin/plateformes-lti/{platform.id}/notes/{learner.id}/renvoyer"
    response = _post(client, path)
    assert response.headers["Location"].endswith(f"/admin/plateformes-lti/{platform.id}#notes")
    assert "La note est renvoyée à la plateforme." in _follow(client, response)
    assert calls == [learner.id]
    [entry] = entries(db_session)
    assert entry.action == "lti.grade.resend" and entry.object_id == str(platform.id)
    assert entry.details == {"lti_learner_id": learner.id, "queued": True}
    refused.add(learner.id)
    assert "ne peut plus être envoyée" in _follow(client, _post(client, path))
    assert entries(db_session)[-1].details["queued"] is False
    # A grade no longer failed is not sent again.
    learner.grade_status = GradeStatus.PENDING
    db_session.commit()
    assert "déjà été renvoyée" in _follow(client, _post(client, path))
    assert calls == [learner.id, learner.id] and len(entries(db_session)) == 2


def test_tout_renvoyer_sends_every_failed_grade_of_the_platform(client, scene, db_session, resends):
    w, admin, platform, learner = scene
    calls, refused = resends
    second = _failed_learner(db_session, w, platform.deployments[0], sub="s-22")
    sent = _failed_learner(db_session, w, platform.deployments[0], sub="s-3", status="SENT")
    other = FakePlatform(issuer="https://autre.lycee.example").register(db_session, w.other)
    elsewhere = _failed_learner(db_session, w, other.deployments[0], sub="s-4")
    db_session.commit()
    refused.add(second.id)
    sign_in(client, admin.email)
    page = _text(client.get(f"/admin/plateformes-lti/{platform.id}"))
    assert "La plateforme a refusé 2 notes" in page
    path = f"/admin/plateformes-lti/{platform.id}/notes/renvoyer"
    page = _follow(client, _post(client, path))
    assert sorted(calls) == sorted([learner.id, second.id])
    assert sent.id not in calls and elsewhere.id not in calls
    assert "1 note est renvoyée à la plateforme." in page
    assert "1 note ne peut plus être envoyée" in page
    [entry] = entries(db_session)
    assert entry.action == "lti.grade.resend" and entry.details == {"learners": 2, "queued": 1}


def test_renvoyer_uses_the_grade_passback(client, scene, db_session):
    """Unpatched: the learner's grade is queued again (what `grades.resend` does)."""
    _, admin, platform, learner = scene
    sign_in(client, admin.email)
    try:
        response = _post(client, f"/admin/plateformes-lti/{platform.id}/notes/renvoyer")
    except NotImplementedError:  # pragma: no cover - until grades.resend is written
        pytest.skip("grades.resend is not written yet")
    assert response.status_code == 303
    db_session.refresh(learner)
    assert learner.grade_status is GradeStatus.PENDING


# -- registration links ---------------------------------------------------------------------------


def test_a_registration_link_is_made_for_a_non_archived_organization(client, scene, db_session):
    w, admin, _, _ = scene
    sign_in(client, admin.email)
    listing = _text(client.get("/admin/plateformes-lti"))
    assert 'action="/admin/plateformes-lti/lien-d-enregistrement"' in listing
    page = _text(
        client.get(f"/admin/plateformes-lti/lien-d-enregistrement?organisation={w.other.id}")
    )
    assert "http://127.0.0.1:5000/lti/register?o=" in page and w.other.name in page
    w.other.archived_at = utcnow()
    db_session.commit()
    archived = _text(
        client.get(f"/admin/plateformes-lti/lien-d-enregistrement?organisation={w.other.id}")
    )
    assert "/lti/register?o=" not in archived and 'id="organisation-error"' in archived
    assert entries(db_session) == []
