"""The "Plateformes LTI" section of `/admin`: registered platforms (LMS), their deployments, what
to paste into the LMS, their recent activity and the grades they did not take.

The section is mounted with `connectors.add_admin_section`: the district gate answers 404 to
everyone but instance administrators, whatever the method, and checks CSRF for them. Views parse
the form, call `lti_tool.registry` (which checks fields and duplicates and names the field at
fault by `code`), write the audit log in the same transaction, commit, then make the framing
origins be read again (`forget_frame_origins`): a platform that changed, came or left may frame
Parcours, or no longer, at once. Destructive or launch-changing actions (deactivating, removing a
deployment) are a question page (GET) and its form (POST).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaigns import connectors
from config.db import get_session
from config.jobs import Job, JobStatus
from config.security import forget_frame_origins
from config.settings import Settings
from lti_tool import grades, registration, registry
from lti_tool.models import (
    GradeStatus,
    LtiDeployment,
    LtiEvent,
    LtiEventKind,
    LtiLearner,
    LtiPlatform,
    LtiResourceLink,
)
from lti_tool.services import origin_of

blueprint = Blueprint("lti_admin", __name__, template_folder="templates")

OBJECT_TYPE = "lti_platform"
KEY_OBJECT_TYPE = "lti_tool_key"
ACTION_LABELS = {
    "lti.platform.create": _l("Plateforme LTI enregistrée"),
    "lti.platform.update": _l("Plateforme LTI modifiée"),
    "lti.platform.activate": _l("Plateforme LTI activée"),
    "lti.platform.deactivate": _l("Plateforme LTI désactivée"),
    "lti.deployment.create": _l("Déploiement LTI ajouté"),
    "lti.deployment.delete": _l("Déploiement LTI retiré"),
    "lti.grade.resend": _l("Notes renvoyées à une plateforme LTI"),
    "lti.keys.rotate": _l("Clés de signature LTI renouvelées"),
}
OBJECT_LABELS = {
    OBJECT_TYPE: _l("Plateforme LTI"),
    KEY_OBJECT_TYPE: _l("Clé de signature LTI"),
}
EVENT_LABELS = {
    LtiEventKind.LAUNCH: _l("Lancement"),
    LtiEventKind.DEEP_LINK: _l("Activité ajoutée (deep linking)"),
    LtiEventKind.REFUSED: _l("Refus"),
    LtiEventKind.GRADE_FAILED: _l("Note non transmise"),
    LtiEventKind.REGISTERED: _l("Enregistrement dynamique"),
}

# The platform's fields, as the add and edit forms name them (and `registry.platform_fields`).
PLATFORM_FIELDS = (
    "name",
    "issuer",
    "client_id",
    "auth_login_url",
    "auth_token_url",
    "key_set_url",
    "audience",
    "frame_origins",
    "match_learners",
)
REQUIRED = ("issuer", "client_id", "auth_login_url", "auth_token_url", "key_set_url")
FORM_MAX = 4096  # what a form field may bring back to the page; the registry sets the limits
URL_ERROR = _l("Saisissez une adresse complète commençant par https:// (1024 caractères au plus).")
# The registry's error `code` → (the field at fault, what to tell the administrator).
FIELD_ERRORS: dict[str, tuple[str, Any]] = {
    "issuer": (
        "issuer",
        _l(
            "Saisissez l’émetteur (issuer) de la plateforme : son adresse, par exemple "
            "https://moodle.lycee.fr (512 caractères au plus)."
        ),
    ),
    "client_id": (
        "client_id",
        _l(
            "Saisissez l’identifiant client (client ID) que la plateforme a attribué à Parcours "
            "(255 caractères au plus)."
        ),
    ),
    "name": ("name", _l("Le nom est limité à 255 caractères.")),
    "deployment_id": (
        "deployment_id",
        _l(
            "Saisissez l’identifiant de déploiement (deployment ID) donné par la plateforme "
            "(255 caractères au plus)."
        ),
    ),
    "auth_login_url": ("auth_login_url", URL_ERROR),
    "auth_token_url": ("auth_token_url", URL_ERROR),
    "key_set_url": ("key_set_url", URL_ERROR),
    "frame": (
        "frame_origins",
        _l(
            "Saisissez des origines séparées par des espaces, chacune de la forme "
            "https://nom.du.site, sans astérisque ni identifiant."
        ),
    ),
    "duplicate_platform": (
        "client_id",
        _l("Une plateforme avec cet émetteur et cet identifiant client est déjà enregistrée."),
    ),
    "duplicate_deployment": (
        "deployment_id",
        _l("Ce déploiement est déjà enregistré pour cette plateforme."),
    ),
    "archived": (
        "organization_id",
        _l("Cette organisation est archivée : choisissez-en une autre, ou désarchivez-la d’abord."),
    ),
}
ORGANIZATION_ERROR = _l("Choisissez une des organisations proposées.")
EVENTS_SHOWN = 20
FAILED_SHOWN = 100


def init_app(app: Flask) -> None:
    """Mount the section under `/admin`."""
    app.register_blueprint(blueprint)
    connectors.add_admin_section(app, blueprint, key="lti", endpoint="lti_admin.platforms")
    connectors.describe_audit(ACTION_LABELS, OBJECT_LABELS)


@blueprint.app_template_filter("lti_event_kind")
def _event_label(kind: LtiEventKind) -> str:
    return str(EVENT_LABELS.get(kind, kind.value))


# -- what the LMS needs of us (also printed by `parcours lti add-platform`) ---------------------


def tool_urls(public_url: str) -> dict[str, str]:
    """The tool's addresses an LMS administrator pastes when registering Parcours by hand."""
    base = public_url.rstrip("/")
    return {
        "login_url": f"{base}/lti/login",
        "launch_url": f"{base}/lti/launch",
        "jwks_url": f"{base}/lti/jwks.json",
        "deep_linking_url": f"{base}/lti/launch",
    }


def deployment_rows(
    session: Session, platform_ids: list[int] | None = None
) -> dict[int, list[tuple[LtiDeployment, connectors.Organization]]]:
    """Each platform's deployments with their organization, oldest first."""
    query = (
        select(LtiDeployment, connectors.Organization)
        .join(connectors.Organization, connectors.Organization.id == LtiDeployment.organization_id)
        .order_by(LtiDeployment.id)
    )
    if platform_ids is not None:
        query = query.where(LtiDeployment.platform_id.in_(platform_ids))
    found: dict[int, list[tuple[LtiDeployment, connectors.Organization]]] = {}
    for deployment, organization in session.execute(query):
        found.setdefault(deployment.platform_id, []).append((deployment, organization))
    return found


def last_launches(session: Session, platform_id: int | None = None) -> dict[int, dt.datetime]:
    """The last launch of each platform: its newest LAUNCH event (teachers and learners, kept
    90 days), or its learners' last launch when older events were purged."""
    found: dict[int, dt.datetime] = {}
    events = (
        select(LtiEvent.platform_id, func.max(LtiEvent.created_at))
        .where(LtiEvent.kind == LtiEventKind.LAUNCH, LtiEvent.platform_id.is_not(None))
        .group_by(LtiEvent.platform_id)
    )
    learners = (
        select(LtiDeployment.platform_id, func.max(LtiLearner.last_launch_at))
        .join(LtiResourceLink, LtiResourceLink.deployment_id == LtiDeployment.id)
        .join(LtiLearner, LtiLearner.resource_link_id == LtiResourceLink.id)
        .group_by(LtiDeployment.platform_id)
    )
    if platform_id is not None:
        events = events.where(LtiEvent.platform_id == platform_id)
        learners = learners.where(LtiDeployment.platform_id == platform_id)
    rows = [*session.execute(events), *session.execute(learners)]
    for owner, moment in rows:
        if owner is not None and moment is not None:
            found[owner] = max(found.get(owner, moment), moment)
    return found


# -- helpers --------------------------------------------------------------------------------------


def _settings() -> Settings:
    settings: Settings = current_app.config["PARCOURS_SETTINGS"]
    return settings


def _platform(platform_id: int) -> LtiPlatform:
    found = get_session().get(LtiPlatform, platform_id)
    if found is None:
        abort(404)
    return found


def _deployment(platform: LtiPlatform, deployment_id: int) -> LtiDeployment:
    found = get_session().get(LtiDeployment, deployment_id)
    if found is None or found.platform_id != platform.id:
        abort(404)
    return found


def _organizations() -> list[connectors.Organization]:
    """The organizations a deployment may reach: those not archived, by name."""
    return list(
        get_session().scalars(
            select(connectors.Organization)
            .where(connectors.Organization.archived_at.is_(None))
            .order_by(connectors.Organization.name, connectors.Organization.id)
        )
    )


def _chosen_organization(
    raw: str, errors: dict[str, str], field: str = "organization_id"
) -> connectors.Organization | None:
    organization = (
        get_session().get(connectors.Organization, int(raw))
        if raw.isdecimal() and len(raw) < 10
        else None
    )
    if organization is None:
        errors[field] = str(ORGANIZATION_ERROR)
    elif organization.archived_at is not None:
        errors[field] = str(FIELD_ERRORS["archived"][1])
    return organization


def _typed(keys: tuple[str, ...]) -> dict[str, str]:
    return {key: request.form.get(key, "").strip()[:FORM_MAX] for key in keys}


def _check_platform(form: dict[str, str], errors: dict[str, str]) -> None:
    """The errors seen before asking the registry, all at once (it stops at the first):
    required fields, URLs, the issuer's form and the framing origins."""
    for field in REQUIRED:
        if not form[field]:
            errors[field] = str(FIELD_ERRORS[field][1])
    if form["issuer"] and "://" not in form["issuer"]:
        errors["issuer"] = str(FIELD_ERRORS["issuer"][1])
    for field in registry.URL_FIELDS:
        if form[field] and field not in errors:
            try:
                registry.check_url(form[field], field)
            except connectors.InvalidInput:
                errors[field] = str(URL_ERROR)
    if any(origin_of(item) is None for item in form["frame_origins"].split()):
        errors["frame_origins"] = str(FIELD_ERRORS["frame"][1])


def _in_form_order(errors: dict[str, str]) -> dict[str, str]:
    """The errors in the order of the fields (the summary lists them so)."""
    order = (*PLATFORM_FIELDS, "deployment_id", "organization_id")
    return {field: errors[field] for field in order if field in errors}


def _service_error(error: connectors.ServiceError, errors: dict[str, str]) -> int:
    """Put the registry's refusal on its field; the status to answer with."""
    field, message = FIELD_ERRORS.get(error.code, ("issuer", _l("Vérifiez ce champ.")))
    errors[field] = str(message)
    return 409 if error.code.startswith("duplicate") or error.code == "archived" else 400


def _platform_values(form: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {key: form[key] for key in PLATFORM_FIELDS}
    values["audience"] = form["audience"] or None
    values["match_learners"] = form["match_learners"] == "oui"
    return values


def _audit(action: str, platform: LtiPlatform, details: dict[str, Any] | None = None) -> None:
    connectors.audit(
        action,
        object_type=OBJECT_TYPE,
        object_id=platform.id,
        object_label=platform.label,
        details=details,
    )


def _changed() -> None:
    """After a commit that changed platforms: framing origins are read again at once."""
    forget_frame_origins(current_app)


def _back(platform: LtiPlatform, anchor: str | None = None) -> Response:
    return redirect(url_for("lti_admin.platform", platform_id=platform.id, _anchor=anchor), 303)


# -- the list -------------------------------------------------------------------------------------


@blueprint.get("/admin/plateformes-lti", endpoint="platforms")
def platforms() -> str:
    db = get_session()
    found = list(db.scalars(select(LtiPlatform).order_by(LtiPlatform.id)))
    found.sort(key=lambda p: (p.label.casefold(), p.id))
    return render_template(
        "lti_admin/platforms.html",
        section="lti",
        platforms=found,
        deployments=deployment_rows(db),
        launches=last_launches(db),
        organizations=_organizations(),
    )


@blueprint.get("/admin/plateformes-lti/lien-d-enregistrement", endpoint="registration_url")
def registration_link() -> str:
    """A dynamic registration URL for an organization (signed, valid 7 days; nothing stored:
    the platform that uses it waits, inactive, until activated here)."""
    raw = request.args.get("organisation", "").strip()[:20]
    errors: dict[str, str] = {}
    organization = _chosen_organization(raw, errors, "organisation") if raw else None
    url = None
    if organization is not None and not errors:
        settings = _settings()
        url = registration.registration_url(settings.public_url, settings.secret_key, organization)
    return render_template(
        "lti_admin/registration_url.html",
        section="lti",
        organization=organization if not errors else None,
        organizations=_organizations(),
        form={"organisation": raw},
        errors=errors,
        url=url,
        days=registration.LINK_LIFETIME // 86400,
    )


# -- adding a platform ----------------------------------------------------------------------------


def _new_page(form: dict[str, str], errors: dict[str, str], status: int = 200) -> tuple[str, int]:
    return render_template(
        "lti_admin/platform_new.html",
        section="lti",
        form=form,
        errors=_in_form_order(errors),
        organizations=_organizations(),
        urls=tool_urls(_settings().public_url),
    ), status


@blueprint.route("/admin/plateformes-lti/nouvelle", methods=["GET", "POST"], endpoint="create")
def create() -> Response | tuple[str, int]:
    keys = (*PLATFORM_FIELDS, "deployment_id", "organization_id")
    if request.method == "GET":
        return _new_page(dict.fromkeys(keys, "") | {"match_learners": "non"}, {})
    form = _typed(keys)
    errors: dict[str, str] = {}
    _check_platform(form, errors)
    if not form["deployment_id"]:
        errors["deployment_id"] = str(FIELD_ERRORS["deployment_id"][1])
    organization = _chosen_organization(form["organization_id"], errors)
    if errors or organization is None:
        status = 409 if errors.get("organization_id") == str(FIELD_ERRORS["archived"][1]) else 400
        return _new_page(form, errors, status)
    db = get_session()
    try:
        platform = registry.add_platform(
            db,
            organization=organization,
            deployment_id=form["deployment_id"],
            **_platform_values(form),
        )
    except connectors.ServiceError as error:
        db.rollback()
        status = _service_error(error, errors)
        return _new_page(form, errors, status)
    _audit(
        "lti.platform.create",
        platform,
        {
            "issuer": platform.issuer,
            "client_id": platform.client_id,
            "deployment_id": form["deployment_id"],
            "organization_id": organization.id,
            "organization": organization.name,
        },
    )
    db.commit()
    _changed()
    flash(
        _(
            "La plateforme %(name)s est enregistrée : ses lancements depuis le déploiement "
            "%(deployment)s ouvrent les campagnes de %(organization)s.",
            name=platform.label,
            deployment=form["deployment_id"],
            organization=organization.name,
        ),
        "info",
    )
    return _back(platform)


# -- one platform ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedGrade:
    """A learner whose grade the platform did not take, as the page shows it (no name: the
    learner's LTI identity as a hash, like the platform's events)."""

    learner_id: int
    reference: str
    campaign: str | None
    link: str
    failed_at: dt.datetime | None
    last_error: str | None


def failed_grades(
    session: Session, platform: LtiPlatform, limit: int | None = None
) -> tuple[list[FailedGrade], int]:
    """The platform's learners whose grade delivery FAILED (oldest first) and their number."""
    where = (
        LtiDeployment.platform_id == platform.id,
        LtiLearner.grade_status == GradeStatus.FAILED,
    )
    joined = (
        select(LtiLearner.id)
        .join(LtiResourceLink, LtiResourceLink.id == LtiLearner.resource_link_id)
        .join(LtiDeployment, LtiDeployment.id == LtiResourceLink.deployment_id)
        .where(*where)
    )
    total = session.scalar(select(func.count()).select_from(joined.subquery())) or 0
    query = (
        select(LtiLearner, LtiResourceLink, connectors.Campaign.name)
        .join(LtiResourceLink, LtiResourceLink.id == LtiLearner.resource_link_id)
        .join(LtiDeployment, LtiDeployment.id == LtiResourceLink.deployment_id)
        .outerjoin(connectors.Campaign, connectors.Campaign.id == LtiResourceLink.campaign_id)
        .where(*where)
        .order_by(LtiLearner.id)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query).all()
    # When it failed: the parked job of the learner's grade (the learner row has no date).
    keys = {grades.dedupe_key(learner.id): learner.id for learner, _, _ in rows}
    failed_at: dict[int, dt.datetime] = {}
    if keys:
        for key, moment in session.execute(
            select(Job.dedupe_key, func.max(Job.finished_at))
            .where(Job.dedupe_key.in_(list(keys)), Job.status == JobStatus.FAILED)
            .group_by(Job.dedupe_key)
        ):
            if key in keys and moment is not None:
                failed_at[keys[key]] = moment
    return [
        FailedGrade(
            learner_id=learner.id,
            reference=connectors.identity_ref(platform.issuer, learner.sub),
            campaign=campaign,
            link=link.title or link.resource_link_id,
            failed_at=failed_at.get(learner.id),
            last_error=learner.last_error,
        )
        for learner, link, campaign in rows
    ], total


def _detail_page(
    platform: LtiPlatform,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    db = get_session()
    failed, failed_total = failed_grades(db, platform, FAILED_SHOWN)
    events = db.scalars(
        select(LtiEvent)
        .where(LtiEvent.platform_id == platform.id)
        .order_by(LtiEvent.created_at.desc(), LtiEvent.id.desc())
        .limit(EVENTS_SHOWN)
    ).all()
    return render_template(
        "lti_admin/platform.html",
        section="lti",
        platform=platform,
        deployments=deployment_rows(db, [platform.id]).get(platform.id, []),
        last_launch=last_launches(db, platform.id).get(platform.id),
        urls=tool_urls(_settings().public_url),
        events=events,
        failed=failed,
        failed_total=failed_total,
        organizations=_organizations(),
        form=form or {"deployment_id": "", "organization_id": ""},
        errors=_in_form_order(errors or {}),
    ), status


@blueprint.get("/admin/plateformes-lti/<int:platform_id>", endpoint="platform")
def platform(platform_id: int) -> tuple[str, int]:
    return _detail_page(_platform(platform_id))


# -- editing --------------------------------------------------------------------------------------


def _edit_page(
    platform: LtiPlatform, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> tuple[str, int]:
    return render_template(
        "lti_admin/platform_edit.html",
        section="lti",
        platform=platform,
        form=form,
        errors=_in_form_order(errors),
    ), status


@blueprint.route(
    "/admin/plateformes-lti/<int:platform_id>/modifier", methods=["GET", "POST"], endpoint="edit"
)
def edit(platform_id: int) -> Response | tuple[str, int]:
    found = _platform(platform_id)
    if request.method == "GET":
        current = {key: getattr(found, key) or "" for key in PLATFORM_FIELDS}
        current["match_learners"] = "oui" if found.match_learners else "non"
        return _edit_page(found, current, {})
    form = _typed(PLATFORM_FIELDS)
    errors: dict[str, str] = {}
    _check_platform(form, errors)
    if errors:
        return _edit_page(found, form, errors, 400)
    db = get_session()
    try:
        changes = registry.update_platform(db, found, **_platform_values(form))
    except connectors.ServiceError as error:
        db.rollback()
        status = _service_error(error, errors)
        return _edit_page(_platform(platform_id), form, errors, status)
    if changes:
        _audit("lti.platform.update", found, {"changes": changes})
    db.commit()
    if changes:
        _changed()
        flash(_("La plateforme %(name)s est modifiée.", name=found.label), "info")
    else:
        flash(_("Aucune modification."), "info")
    return _back(found)


# -- activating, deactivating ---------------------------------------------------------------------


def _activation(platform_id: int, active: bool) -> Response | tuple[str, int]:
    """The question (GET), then the change (POST, from the question's form)."""
    found = _platform(platform_id)
    if request.method == "GET":
        return render_template(
            "lti_admin/platform_activation.html",
            section="lti",
            platform=found,
            activate=active,
            deployments=deployment_rows(get_session(), [found.id]).get(found.id, []),
        ), 200
    if found.is_active != active:
        found.is_active = active
        _audit("lti.platform.activate" if active else "lti.platform.deactivate", found)
        get_session().commit()
        _changed()
        flash(
            _("La plateforme %(name)s est active : ses lancements sont acceptés.", name=found.label)
            if active
            else _(
                "La plateforme %(name)s est désactivée : ses lancements sont refusés.",
                name=found.label,
            ),
            "info",
        )
    return _back(found)


@blueprint.route(
    "/admin/plateformes-lti/<int:platform_id>/activer",
    methods=["GET", "POST"],
    endpoint="activate",
)
def activate(platform_id: int) -> Response | tuple[str, int]:
    return _activation(platform_id, True)


@blueprint.route(
    "/admin/plateformes-lti/<int:platform_id>/desactiver",
    methods=["GET", "POST"],
    endpoint="deactivate",
)
def deactivate(platform_id: int) -> Response | tuple[str, int]:
    return _activation(platform_id, False)


# -- deployments ----------------------------------------------------------------------------------


@blueprint.route(
    "/admin/plateformes-lti/<int:platform_id>/deploiements",
    methods=["GET", "POST"],
    endpoint="add_deployment",
)
def add_deployment(platform_id: int) -> Response | tuple[str, int]:
    found = _platform(platform_id)
    if request.method == "GET":
        return _back(found, "deploiement")
    form = _typed(("deployment_id", "organization_id"))
    errors: dict[str, str] = {}
    if not form["deployment_id"]:
        errors["deployment_id"] = str(FIELD_ERRORS["deployment_id"][1])
    organization = _chosen_organization(form["organization_id"], errors)
    if errors or organization is None:
        status = 409 if errors.get("organization_id") == str(FIELD_ERRORS["archived"][1]) else 400
        return _detail_page(found, form=form, errors=errors, status=status)
    db = get_session()
    try:
        deployment = registry.add_deployment(db, found, form["deployment_id"], organization)
    except connectors.ServiceError as error:
        db.rollback()
        status = _service_error(error, errors)
        return _detail_page(_platform(platform_id), form=form, errors=errors, status=status)
    _audit(
        "lti.deployment.create",
        found,
        {
            "deployment_id": deployment.deployment_id,
            "organization_id": organization.id,
            "organization": organization.name,
        },
    )
    db.commit()
    _changed()
    flash(
        _(
            "Le déploiement %(deployment)s est ajouté : ses lancements ouvrent les campagnes de "
            "%(organization)s.",
            deployment=deployment.deployment_id,
            organization=organization.name,
        ),
        "info",
    )
    return _back(found)


@blueprint.route(
    "/admin/plateformes-lti/<int:platform_id>/deploiements/<int:deployment_id>/retirer",
    methods=["GET", "POST"],
    endpoint="remove_deployment",
)
def remove_deployment(platform_id: int, deployment_id: int) -> Response | tuple[str, int]:
    """The question (GET: what goes with it), then the removal (POST)."""
    found = _platform(platform_id)
    deployment = _deployment(found, deployment_id)
    db = get_session()
    organization = db.get(connectors.Organization, deployment.organization_id)
    name = deployment.deployment_id
    if request.method == "GET":
        links = db.scalar(
            select(func.count())
            .select_from(LtiResourceLink)
            .where(LtiResourceLink.deployment_id == deployment.id)
        )
        learners = db.scalar(
            select(func.count())
            .select_from(LtiLearner)
            .join(LtiResourceLink, LtiResourceLink.id == LtiLearner.resource_link_id)
            .where(LtiResourceLink.deployment_id == deployment.id)
        )
        return render_template(
            "lti_admin/deployment_remove.html",
            section="lti",
            platform=found,
            deployment=deployment,
            organization=organization,
            links=links or 0,
            learners=learners or 0,
        ), 200
    _audit(
        "lti.deployment.delete",
        found,
        {
            "deployment_id": name,
            "organization_id": deployment.organization_id,
            "organization": organization.name if organization is not None else None,
        },
    )
    # Its course links and their learners go with it (foreign keys ON DELETE CASCADE).
    db.delete(deployment)
    db.flush()
    db.commit()
    _changed()
    flash(
        _("Le déploiement %(deployment)s est retiré.", deployment=name),
        "info",
    )
    return _back(found)


# -- grades the platform did not take -------------------------------------------------------------


@blueprint.route(
    "/admin/plateformes-lti/<int:platform_id>/notes/<int:learner_id>/renvoyer",
    methods=["GET", "POST"],
    endpoint="resend",
)
def resend(platform_id: int, learner_id: int) -> Response:
    found = _platform(platform_id)
    db = get_session()
    learner = db.scalars(
        select(LtiLearner)
        .join(LtiResourceLink, LtiResourceLink.id == LtiLearner.resource_link_id)
        .join(LtiDeployment, LtiDeployment.id == LtiResourceLink.deployment_id)
        .where(LtiLearner.id == learner_id, LtiDeployment.platform_id == found.id)
    ).one_or_none()
    if learner is None:
        abort(404)
    if request.method == "GET":
        return _back(found, "notes")
    if learner.grade_status is not GradeStatus.FAILED:
        flash(_("Cette note a déjà été renvoyée."), "info")
        return _back(found, "notes")
    queued = grades.resend(db, learner.id)
    _audit("lti.grade.resend", found, {"lti_learner_id": learner.id, "queued": queued})
    db.commit()
    flash(
        _("La note est renvoyée à la plateforme.")
        if queued
        else _("Cette note ne peut plus être envoyée : l’activité n’accepte plus de notes."),
        "info" if queued else "error",
    )
    return _back(found, "notes")


@blueprint.route(
    "/admin/plateformes-lti/<int:platform_id>/notes/renvoyer",
    methods=["GET", "POST"],
    endpoint="resend_all",
)
def resend_all(platform_id: int) -> Response:
    found = _platform(platform_id)
    if request.method == "GET":
        return _back(found, "notes")
    db = get_session()
    learner_ids = list(
        db.scalars(
            select(LtiLearner.id)
            .join(LtiResourceLink, LtiResourceLink.id == LtiLearner.resource_link_id)
            .join(LtiDeployment, LtiDeployment.id == LtiResourceLink.deployment_id)
            .where(
                LtiDeployment.platform_id == found.id,
                LtiLearner.grade_status == GradeStatus.FAILED,
            )
            .order_by(LtiLearner.id)
        )
    )
    if not learner_ids:
        flash(_("Aucune note à renvoyer."), "info")
        return _back(found, "notes")
    queued = sum(1 for learner_id in learner_ids if grades.resend(db, learner_id))
    _audit("lti.grade.resend", found, {"learners": len(learner_ids), "queued": queued})
    db.commit()
    flash(
        ngettext(
            "%(num)d note est renvoyée à la plateforme.",
            "%(num)d notes sont renvoyées à la plateforme.",
            queued,
        ),
        "info",
    )
    if queued < len(learner_ids):
        flash(
            ngettext(
                "%(num)d note ne peut plus être envoyée : son activité n’accepte plus de notes.",
                "%(num)d notes ne peuvent plus être envoyées : leur activité n’accepte plus de "
                "notes.",
                len(learner_ids) - queued,
            ),
            "error",
        )
    return _back(found, "notes")
