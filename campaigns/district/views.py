"""District administration (`/admin`): organizations, LMS platforms, identity providers and the
audit log, for instance administrators only (`parcours admins grant`).

Everyone else — visitors, students, teachers, school admins — gets the same 404 as for a page
that does not exist, whatever the method: `_gate` runs before any `/admin` path is routed, so
not even a 405 or a CSRF 400 tells that the section exists. The blueprint is exempt from the
global CSRF check because `_gate` makes it, for instance administrators, right after that
decision. Pages refuse framing (no `@frameable`). Changes are services of `campaigns.district.services`,
which write the audit log in the transaction of the change.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from campaigns.accounts import users
from campaigns.accounts.auth import current_person, current_user
from campaigns.district import services as district
from campaigns.orga import team
from campaigns.shared.errors import InvalidInput, ServiceError
from campaigns.shared.models import Organization, OrganizationType
from config.db import get_session, utcnow
from config.numbers import parse_int
from config.security import csrf
from config.settings import Settings

blueprint = Blueprint("admin", __name__, template_folder="templates")
csrf.exempt(blueprint)  # checked by `_gate`, after the 404 for everyone else

TYPE_LABELS = {
    OrganizationType.SCO: _l("Établissement scolaire (SCO)"),
    OrganizationType.SUP: _l("Enseignement supérieur (SUP)"),
    OrganizationType.PRO: _l("Organisation professionnelle (PRO)"),
}
ACTION_LABELS = {
    district.Action.ADMIN_GRANT: _l("Administrateur de l’instance nommé"),
    district.Action.ADMIN_REVOKE: _l("Administrateur de l’instance retiré"),
    district.Action.ORGANIZATION_CREATE: _l("Organisation créée"),
    district.Action.ORGANIZATION_UPDATE: _l("Organisation modifiée"),
    district.Action.ORGANIZATION_ARCHIVE: _l("Organisation archivée"),
    district.Action.ORGANIZATION_UNARCHIVE: _l("Organisation désarchivée"),
    district.Action.ORGANIZATION_INVITE_ADMIN: _l("Administrateur invité"),
}
OBJECT_LABELS = {
    district.ObjectType.ORGANIZATION: _l("Organisation"),
    district.ObjectType.USER: _l("Compte"),
}
STATES = ("actives", "archivees", "toutes")
EMAIL_ERROR = _l("Saisissez une adresse e-mail valide, par exemple nom@exemple.fr.")
FIELD_ERRORS = {
    "name": ("name", _l("Le nom de l’organisation est obligatoire (255 caractères au plus).")),
    "uai": (
        "uai",
        _l("Le code UAI se compose de 7 chiffres suivis d’une lettre, par exemple 0751234A."),
    ),
    "uai_not_school": (
        "uai",
        _l("Seuls les établissements scolaires (type SCO) ont un code UAI : laissez-le vide."),
    ),
    "duplicate_uai": ("uai", _l("Une autre organisation a déjà ce code UAI.")),
    "duplicate_name": ("name", _l("Une autre organisation sans code UAI porte déjà ce nom.")),
}


# -- who may enter --------------------------------------------------------------------------------


def is_instance_admin() -> bool:
    """Whether the signed-in user is an instance administrator (once per request)."""
    if "instance_admin" not in g:
        g.instance_admin = district.is_instance_admin(current_person())
    return bool(g.instance_admin)


@blueprint.before_app_request
def _gate() -> None:
    inside = request.blueprint == "admin" or request.path == "/admin"
    if not (inside or request.path.startswith("/admin/")):
        return
    if not is_instance_admin():
        # Answered as a path that matches no route: the error page (its language link) must
        # not differ from an unknown page's.
        request.url_rule, request.view_args = None, None
        abort(404)
    sections = current_app.extensions.get("parcours.admin_blueprints", set())
    if (request.blueprint == "admin" or request.blueprint in sections) and current_app.config[
        "WTF_CSRF_ENABLED"
    ]:
        csrf.protect()  # as the global check would (it skips GET, HEAD, OPTIONS and TRACE)


# -- sections other packages add (the LTI tool's platforms, the SAML connector's providers) ------

# Audit actions and object types other packages write, with their labels for the journal.
_OTHER_ACTIONS: dict[str, Any] = {}
_OTHER_OBJECTS: dict[str, Any] = {}


def add_section(app: Flask, blueprint: Blueprint, *, key: str, endpoint: str) -> None:
    """Let `blueprint` (whose routes live under `/admin/`) serve the section `key` ("lti",
    "idp") of the navigation: same 404 gate, CSRF checked by the gate as here."""
    csrf.exempt(blueprint)
    app.extensions.setdefault("parcours.admin_blueprints", set()).add(blueprint.name)
    app.extensions.setdefault("parcours.admin_sections", {})[key] = endpoint


def describe_audit(actions: dict[str, Any], objects: dict[str, Any]) -> None:
    """Labels of the audit actions and object types another package records."""
    _OTHER_ACTIONS.update(actions)
    _OTHER_OBJECTS.update(objects)


def audit(
    action: str,
    *,
    object_type: str,
    object_id: int | None,
    object_label: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record an action of the signed-in instance administrator in the audit log."""
    district.record(
        get_session(),
        _actor(),
        action,
        object_type=object_type,
        object_id=object_id,
        object_label=object_label,
        details=details,
    )


def _section_endpoint(key: str, default: str) -> str:
    sections: dict[str, str] = current_app.extensions.get("parcours.admin_sections", {})
    return sections.get(key, default)


@blueprint.app_context_processor
def _inject() -> dict[str, object]:
    return {"is_instance_admin": is_instance_admin, "admin_section": _section_endpoint}


@blueprint.app_template_filter("organization_type")
def _type_label(type_: OrganizationType) -> str:
    return str(TYPE_LABELS[type_])


@blueprint.app_template_filter("audit_action")
def _action_label(action: str) -> str:
    try:
        return str(ACTION_LABELS[district.Action(action)])
    except ValueError:
        return str(_OTHER_ACTIONS.get(action, action))


@blueprint.app_template_filter("audit_object")
def _object_label(object_type: str) -> str:
    try:
        return str(OBJECT_LABELS[district.ObjectType(object_type)])
    except ValueError:
        return str(_OTHER_OBJECTS.get(object_type, object_type))


def _actor() -> district.Actor:
    user = current_user()
    assert user is not None  # noqa: S101 - `_gate` let only instance administrators in
    return district.Actor.of(user, request_id=g.get("request_id"))


def _settings() -> Settings:
    settings: Settings = current_app.config["PARCOURS_SETTINGS"]
    return settings


def _organization(organization_id: int) -> Organization:
    found = get_session().get(Organization, organization_id)
    if found is None:
        abort(404)
    return found


# -- organizations --------------------------------------------------------------------------------


@blueprint.get("/admin", endpoint="home")
def home() -> Response:
    return redirect(url_for("admin.organizations"))


@blueprint.get("/admin/organisations", endpoint="organizations")
def organizations() -> str:
    search = " ".join(request.args.get("q", "").split())[: district.SEARCH_MAX]
    state = request.args.get("etat", "")
    state = state if state in STATES else "actives"
    archived = {"actives": False, "archivees": True, "toutes": None}[state]
    page = district.list_organizations(
        get_session(),
        search=search,
        archived=archived,
        page=parse_int(request.args.get("page"), 1, high=99_999),
    )
    return render_template(
        "admin/organizations.html", section="organisations", page=page, search=search, state=state
    )


def _type(raw: str | None) -> OrganizationType | None:
    try:
        return OrganizationType(raw or "")
    except ValueError:
        return None


def _organization_form(*, with_admin: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The typed values and the errors found before asking the services."""
    keys = ("name", "type", "uai", *(("admin_email",) if with_admin else ()))
    form = {key: request.form.get(key, "").strip()[:320] for key in keys}
    errors: dict[str, str] = {}
    if _type(form["type"]) is None:
        errors["type"] = _("Choisissez un type d’organisation.")
    if with_admin:
        try:
            users.normalize_email(form["admin_email"])
        except InvalidInput:
            errors["admin_email"] = str(EMAIL_ERROR)
    return form, errors


def _service_error(error: ServiceError, errors: dict[str, str]) -> None:
    field, message = FIELD_ERRORS.get(error.code, ("name", _l("Vérifiez ce champ.")))
    errors[field] = str(message)


def _new_page(form: dict[str, str], errors: dict[str, str], status: int = 200) -> tuple[str, int]:
    return render_template(
        "admin/organization_new.html",
        section="organisations",
        form=form,
        errors=errors,
        types=list(OrganizationType),
    ), status


@blueprint.route("/admin/organisations/nouvelle", methods=["GET", "POST"], endpoint="create")
def create() -> Response | tuple[str, int]:
    if request.method == "GET":
        return _new_page({"name": "", "type": "SCO", "uai": "", "admin_email": ""}, {})
    form, errors = _organization_form(with_admin=True)
    type_ = _type(form["type"])
    if errors or type_ is None:
        return _new_page(form, errors, 400)
    db = get_session()
    try:
        founded = district.create_organization(
            db,
            name=form["name"],
            type=type_,
            uai=form["uai"] or None,
            admin_email=form["admin_email"],
            public_url=_settings().public_url,
            actor=_actor(),
        )
    except ServiceError as error:
        db.rollback()
        _service_error(error, errors)
        return _new_page(form, errors, 409 if error.code.startswith("duplicate") else 400)
    organization = founded.organization
    db.commit()
    flash(
        _(
            "L’organisation %(name)s est créée. Une invitation d’administrateur a été envoyée à "
            "%(email)s.",
            name=organization.name,
            email=users.normalize_email(form["admin_email"]),
        ),
        "info",
    )
    return redirect(url_for("admin.organization", organization_id=organization.id), 303)


def _detail_page(
    organization: Organization,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    db = get_session()
    return render_template(
        "admin/organization.html",
        section="organisations",
        organization=organization,
        admins=district.organization_admins(db, organization),
        invitations=district.pending_admin_invitations(db, organization),
        form=form or {"email": ""},
        errors=errors or {},
        now=utcnow(),
    ), status


@blueprint.get("/admin/organisations/<int:organization_id>", endpoint="organization")
def organization(organization_id: int) -> tuple[str, int]:
    return _detail_page(_organization(organization_id))


@blueprint.route(
    "/admin/organisations/<int:organization_id>/administrateurs",
    methods=["GET", "POST"],
    endpoint="invite_admin",
)
def invite_admin(organization_id: int) -> Response | tuple[str, int]:
    found = _organization(organization_id)
    if request.method == "GET":
        return redirect(url_for("admin.organization", organization_id=found.id))
    form = {"email": request.form.get("email", "").strip()[:320]}
    try:
        address = users.normalize_email(form["email"])
    except InvalidInput:
        return _detail_page(found, form=form, errors={"email": str(EMAIL_ERROR)}, status=400)
    if found.archived_at is not None:
        message = _("Cette organisation est archivée : désarchivez-la avant d’inviter quelqu’un.")
        return _detail_page(found, form=form, errors={"email": message}, status=409)
    db = get_session()
    invited = district.invite_admin(
        db, found, email=address, public_url=_settings().public_url, actor=_actor()
    )
    db.commit()
    if invited.outcome is team.Outcome.ALREADY_MEMBER:
        flash(
            _(
                "%(email)s est déjà membre de l’organisation : un de ses administrateurs peut "
                "changer son rôle dans « Équipe ».",
                email=address,
            ),
            "info",
        )
    elif invited.outcome is team.Outcome.RENEWED:
        flash(
            _(
                "Une nouvelle invitation a été envoyée à %(email)s ; le lien précédent ne "
                "fonctionne plus.",
                email=address,
            ),
            "info",
        )
    else:
        flash(_("Une invitation a été envoyée à %(email)s.", email=address), "info")
    return redirect(url_for("admin.organization", organization_id=found.id), 303)


def _edit_page(
    organization: Organization, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> tuple[str, int]:
    return render_template(
        "admin/organization_edit.html",
        section="organisations",
        organization=organization,
        form=form,
        errors=errors,
        types=list(OrganizationType),
    ), status


@blueprint.route(
    "/admin/organisations/<int:organization_id>/modifier",
    methods=["GET", "POST"],
    endpoint="edit",
)
def edit(organization_id: int) -> Response | tuple[str, int]:
    found = _organization(organization_id)
    if request.method == "GET":
        current = {"name": found.name, "type": found.type.value, "uai": found.uai or ""}
        return _edit_page(found, current, {})
    form, errors = _organization_form(with_admin=False)
    type_ = _type(form["type"])
    if errors or type_ is None:
        return _edit_page(found, form, errors, 400)
    db = get_session()
    try:
        changes = district.update_organization(
            db, found, name=form["name"], type=type_, uai=form["uai"] or None, actor=_actor()
        )
    except ServiceError as error:
        db.rollback()
        _service_error(error, errors)
        return _edit_page(
            _organization(organization_id),
            form,
            errors,
            409 if error.code.startswith("duplicate") else 400,
        )
    db.commit()
    if changes:
        flash(_("L’organisation %(name)s est modifiée.", name=found.name), "info")
    else:
        flash(_("Aucune modification."), "info")
    return redirect(url_for("admin.organization", organization_id=found.id), 303)


def _archiving(organization_id: int, archive: bool) -> Response | tuple[str, int]:
    """The question (GET), then the change (POST, from the question's form)."""
    found = _organization(organization_id)
    if request.method == "GET":
        return render_template(
            "admin/organization_archive.html",
            section="organisations",
            organization=found,
            archive=archive,
        ), 200
    db = get_session()
    changed = district.set_archived(db, found, archive, actor=_actor())
    db.commit()
    if changed:
        message = (
            _("L’organisation %(name)s est archivée.", name=found.name)
            if archive
            else _("L’organisation %(name)s est de nouveau active.", name=found.name)
        )
        flash(message, "info")
    return redirect(url_for("admin.organization", organization_id=found.id), 303)


@blueprint.route(
    "/admin/organisations/<int:organization_id>/archiver",
    methods=["GET", "POST"],
    endpoint="archive",
)
def archive(organization_id: int) -> Response | tuple[str, int]:
    return _archiving(organization_id, True)


@blueprint.route(
    "/admin/organisations/<int:organization_id>/desarchiver",
    methods=["GET", "POST"],
    endpoint="unarchive",
)
def unarchive(organization_id: int) -> Response | tuple[str, int]:
    return _archiving(organization_id, False)


# The connectors' sections (LTI platforms, identity providers) are their own: `lti_tool.admin`,
# `sso.admin`, mounted with `add_section`.


# -- the audit log --------------------------------------------------------------------------------


@blueprint.get("/admin/journal", endpoint="journal")
def journal() -> str:
    filters: dict[str, Any] = {
        "action": request.args.get("action", ""),
        "acteur": " ".join(request.args.get("acteur", "").split())[: district.SEARCH_MAX],
        "objet": request.args.get("objet", ""),
        "objet_id": request.args.get("objet_id", "").strip()[:64],
    }
    actions = [a.value for a in district.Action] + list(_OTHER_ACTIONS)
    object_types = [o.value for o in district.ObjectType] + list(_OTHER_OBJECTS)
    if filters["action"] not in actions:
        filters["action"] = ""
    if filters["objet"] not in object_types:
        filters["objet"] = ""
    page = district.audit_entries(
        get_session(),
        action=filters["action"],
        actor=filters["acteur"],
        object_type=filters["objet"],
        object_id=filters["objet_id"],
        page=parse_int(request.args.get("page"), 1, high=99_999),
    )
    return render_template(
        "admin/journal.html",
        section="journal",
        page=page,
        filters=filters,
        args={k: v or None for k, v in filters.items()},
        actions=actions,
        object_types=object_types,
    )
