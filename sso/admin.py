"""The "Fournisseurs d'identité" section of `/admin`: identity providers (the GAR, an academy's
or a university's IdP), what to give their administrators, the schools each may sign users into,
their last logins and errors, a connection test that runs a real login and shows the attributes
received, metadata read again on demand, activation after a confirmation.

Mounted with `connectors.add_admin_section`: the district gate answers 404 to everyone but
instance administrators, whatever the method, and checks CSRF for them. Each change writes the
audit log in its transaction.
"""

from __future__ import annotations

import json
from typing import Any

import requests
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
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from campaigns import connectors
from config.db import get_session
from config.settings import Settings
from sso import registry, saml
from sso.cli import OBJECT_TYPE
from sso.models import AttributeMapping, SamlEvent, SamlEventKind, SamlIdentityProvider

blueprint = Blueprint("saml_admin", __name__, template_folder="templates")

FORM_MAX = 2048
EVENTS_SHOWN = 20
FIELDS = ("slug", "name", "metadata_url", "metadata_xml", "mapping", "organizations")
ERRORS = {
    "slug": _l("Un nom court : lettres minuscules, chiffres et tirets, par exemple « gar »."),
    "slug_taken": _l("Un fournisseur d’identité porte déjà ce nom court."),
    "metadata": _l(
        "Ces métadonnées ne sont pas utilisables : document SAML illisible, sans certificat de "
        "signature, ou expiré."
    ),
    "metadata_url": _l("Une adresse https:// qui donne les métadonnées (sans redirection)."),
    "metadata_missing": _l("Donnez l’adresse des métadonnées, ou collez-les."),
    "mapping": _l("Choisissez une des lectures d’attributs proposées."),
    "organizations": _l("Établissements inconnus ou archivés : %(refs)s."),
}


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    connectors.add_admin_section(app, blueprint, key="idp", endpoint="saml_admin.idps")


def _settings() -> Settings:
    settings: Settings = current_app.config["PARCOURS_SETTINGS"]
    return settings


def _idp(idp_id: int) -> SamlIdentityProvider:
    found = get_session().get(SamlIdentityProvider, idp_id)
    if found is None:
        abort(404)
    return found


def _audit(action: str, idp: SamlIdentityProvider, details: dict[str, Any] | None = None) -> None:
    connectors.audit(
        action, object_type=OBJECT_TYPE, object_id=idp.id, object_label=idp.name, details=details
    )


def _back(idp: SamlIdentityProvider) -> Response:
    return redirect(url_for("saml_admin.idp", idp_id=idp.id), 303)


def _organizations_of(idp: SamlIdentityProvider) -> list[connectors.Organization]:
    session = get_session()
    found = [
        session.get(connectors.Organization, organization_id)
        for organization_id in sorted(registry.organization_ids(session, idp))
    ]
    return sorted((o for o in found if o is not None), key=lambda o: (o.name, o.id))


def _read_organizations(raw: str, errors: dict[str, str]) -> list[connectors.Organization]:
    """The schools typed one per line (UAI or id); unknown or archived ones are an error."""
    session = get_session()
    found: list[connectors.Organization] = []
    wrong: list[str] = []
    for reference in dict.fromkeys(part.strip() for part in raw.replace(",", "\n").splitlines()):
        if not reference:
            continue
        organization = connectors.find_organization(session, reference[:64])
        if organization is None or organization.archived_at is not None:
            wrong.append(reference[:20])
        elif organization not in found:
            found.append(organization)
    if wrong:
        errors["organizations"] = str(ERRORS["organizations"]) % {"refs": ", ".join(wrong[:10])}
    return found


def _mapping(raw: str, errors: dict[str, str]) -> AttributeMapping:
    try:
        return AttributeMapping(raw)
    except ValueError:
        errors["mapping"] = str(ERRORS["mapping"])
        return AttributeMapping.GAR


def _typed(keys: tuple[str, ...]) -> dict[str, str]:
    limits = {"metadata_xml": registry.METADATA_MAX_BYTES}
    return {key: request.form.get(key, "").strip()[: limits.get(key, FORM_MAX)] for key in keys}


# -- the list -------------------------------------------------------------------------------------


@blueprint.get("/admin/fournisseurs-identite", endpoint="idps")
def idps() -> str:
    session = get_session()
    found = list(session.scalars(select(SamlIdentityProvider).order_by(SamlIdentityProvider.slug)))
    last_login = dict(
        session.execute(
            select(SamlEvent.idp_id, func.max(SamlEvent.created_at))
            .where(SamlEvent.kind == SamlEventKind.LOGIN)
            .group_by(SamlEvent.idp_id)
        ).all()
    )
    return render_template(
        "saml_admin/idps.html",
        section="idp",
        idps=found,
        organizations={idp.id: _organizations_of(idp) for idp in found},
        last_login=last_login,
    )


# -- adding ---------------------------------------------------------------------------------------


def _new_page(form: dict[str, str], errors: dict[str, str], status: int = 200) -> tuple[str, int]:
    return render_template(
        "saml_admin/idp_new.html",
        section="idp",
        form=form,
        errors=errors,
        mappings=AttributeMapping,
    ), status


@blueprint.route("/admin/fournisseurs-identite/nouveau", methods=["GET", "POST"], endpoint="create")
def create() -> Response | tuple[str, int]:
    if request.method == "GET":
        return _new_page({**dict.fromkeys(FIELDS, ""), "mapping": "gar"}, {})
    form = _typed(FIELDS)
    errors: dict[str, str] = {}
    slug = form["slug"].lower()
    if not registry.SLUG.fullmatch(slug):
        errors["slug"] = str(ERRORS["slug"])
    mapping = _mapping(form["mapping"], errors)
    organizations = _read_organizations(form["organizations"], errors)
    if not form["metadata_url"] and not form["metadata_xml"]:
        errors["metadata_url"] = str(ERRORS["metadata_missing"])
    if errors:
        return _new_page(form, errors, 400)
    session = get_session()
    try:
        if form["metadata_xml"]:
            document = form["metadata_xml"].encode()
        else:
            document = registry.fetch_metadata(requests.Session(), form["metadata_url"])
        idp = registry.add_idp(
            session,
            slug=slug,
            metadata=document,
            metadata_url=form["metadata_url"] or None,
            name=form["name"],
            mapping=mapping,
            organizations=organizations,
        )
    except connectors.ServiceError as error:
        session.rollback()
        field = {"slug": "slug", "metadata_url": "metadata_url"}.get(error.code, "metadata_xml")
        key = "slug_taken" if isinstance(error, connectors.AlreadyExists) else error.code
        errors[field] = str(ERRORS.get(key, ERRORS["metadata"]))
        return _new_page(form, errors, 409 if key == "slug_taken" else 400)
    _audit(
        "saml.idp.create",
        idp,
        {
            "slug": idp.slug,
            "entity_id": idp.entity_id,
            "organizations": [o.id for o in organizations],
        },
    )
    session.commit()
    flash(
        _(
            "Le fournisseur d’identité %(name)s est enregistré. Donnez à son administrateur "
            "l’adresse des métadonnées de Parcours ci-dessous, puis testez la connexion.",
            name=idp.name,
        ),
        "info",
    )
    return _back(idp)


# -- one identity provider ------------------------------------------------------------------------


@blueprint.get("/admin/fournisseurs-identite/<int:idp_id>", endpoint="idp")
def idp(idp_id: int) -> str:
    found = _idp(idp_id)
    session = get_session()
    events = session.scalars(
        select(SamlEvent)
        .where(SamlEvent.idp_id == found.id)
        .order_by(SamlEvent.created_at.desc(), SamlEvent.id.desc())
        .limit(EVENTS_SHOWN)
    ).all()
    base = saml.sp_base(_settings().public_url, found)
    return render_template(
        "saml_admin/idp.html",
        section="idp",
        idp=found,
        organizations=_organizations_of(found),
        events=events,
        sp={"metadata": f"{base}/metadata.xml", "acs": f"{base}/acs", "login": f"{base}/login"},
    )


def _edit_page(
    found: SamlIdentityProvider, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> tuple[str, int]:
    return render_template(
        "saml_admin/idp_edit.html",
        section="idp",
        idp=found,
        form=form,
        errors=errors,
        mappings=AttributeMapping,
    ), status


@blueprint.route(
    "/admin/fournisseurs-identite/<int:idp_id>/modifier", methods=["GET", "POST"], endpoint="edit"
)
def edit(idp_id: int) -> Response | tuple[str, int]:
    found = _idp(idp_id)
    keys = ("name", "metadata_url", "mapping", "organizations", "allow_idp_initiated")
    if request.method == "GET":
        current = {
            "name": found.name,
            "metadata_url": found.metadata_url or "",
            "mapping": found.mapping.value,
            "organizations": "\n".join(o.uai or str(o.id) for o in _organizations_of(found)),
            "allow_idp_initiated": "1" if found.allow_idp_initiated else "",
        }
        return _edit_page(found, current, {})
    form = _typed(keys)
    errors: dict[str, str] = {}
    mapping = _mapping(form["mapping"], errors)
    organizations = _read_organizations(form["organizations"], errors)
    if form["metadata_url"]:
        try:
            registry.check_metadata_url(form["metadata_url"])
        except connectors.InvalidInput:
            errors["metadata_url"] = str(ERRORS["metadata_url"])
    if errors:
        return _edit_page(found, form, errors, 400)
    session = get_session()
    changes = registry.update_idp(
        session,
        found,
        name=form["name"],
        mapping=mapping,
        allow_idp_initiated=form["allow_idp_initiated"] == "1",
        metadata_url=form["metadata_url"] or None,
        organizations=organizations,
    )
    if changes:
        _audit("saml.idp.update", found, {"changes": changes})
    session.commit()
    flash(
        _("Le fournisseur d’identité %(name)s est modifié.", name=found.name)
        if changes
        else _("Aucune modification."),
        "info",
    )
    return _back(found)


def _activation(idp_id: int, active: bool) -> Response | tuple[str, int]:
    """The question (GET), then the change (POST, from the question's form)."""
    found = _idp(idp_id)
    if request.method == "GET":
        return render_template(
            "saml_admin/idp_activation.html", section="idp", idp=found, activate=active
        ), 200
    if found.is_active != active:
        found.is_active = active
        registry.sync_gar(get_session())
        _audit("saml.idp.activate" if active else "saml.idp.deactivate", found)
        get_session().commit()
        flash(
            _("Le fournisseur d’identité %(name)s est actif.", name=found.name)
            if active
            else _(
                "Le fournisseur d’identité %(name)s est désactivé : ses connexions sont refusées.",
                name=found.name,
            ),
            "info",
        )
    return _back(found)


@blueprint.route(
    "/admin/fournisseurs-identite/<int:idp_id>/activer",
    methods=["GET", "POST"],
    endpoint="activate",
)
def activate(idp_id: int) -> Response | tuple[str, int]:
    return _activation(idp_id, True)


@blueprint.route(
    "/admin/fournisseurs-identite/<int:idp_id>/desactiver",
    methods=["GET", "POST"],
    endpoint="deactivate",
)
def deactivate(idp_id: int) -> Response | tuple[str, int]:
    return _activation(idp_id, False)


@blueprint.post("/admin/fournisseurs-identite/<int:idp_id>/metadonnees", endpoint="refresh")
def refresh(idp_id: int) -> Response:
    found = _idp(idp_id)
    if not found.metadata_url:
        flash(_("Ce fournisseur d’identité n’a pas d’adresse de métadonnées."), "error")
        return _back(found)
    session = get_session()
    replaced = registry.refresh_metadata(session, found, requests.Session())
    _audit("saml.idp.refresh", found, {"replaced": replaced})
    session.commit()
    if replaced:
        flash(_("Les métadonnées sont relues et à jour."), "info")
    else:
        flash(
            _("Les métadonnées relues sont refusées ; la dernière version valable est gardée."),
            "error",
        )
    return _back(found)


@blueprint.get("/admin/fournisseurs-identite/<int:idp_id>/tester", endpoint="test")
def test(idp_id: int) -> Response:
    """Run a real login against the IdP; its answer shows the attributes received (nobody is
    signed in by it)."""
    from sso.views import begin_login

    return begin_login(_idp(idp_id), None, purpose=saml.TEST)


# -- a person's data (RGPD, GAR duties) -----------------------------------------------------------


def _person(found: SamlIdentityProvider) -> tuple[str, connectors.User | None]:
    """The identifier typed (IDO, or the generic mapping's id) and its account, if any. Asked
    by POST only: identifiers never travel in URLs (nor, therefore, in access logs)."""
    typed = " ".join(request.form.get("ido", "").split())[:512]
    if not typed:
        return typed, None
    identity = connectors.ExternalIdentity(
        provider=connectors.AuthenticationProvider.SAML, issuer=found.slug, external_id=typed
    )
    return typed, connectors.find_external_user(get_session(), identity)


def _person_audit(action: str, found: SamlIdentityProvider, typed: str) -> None:
    connectors.audit(
        action,
        object_type=OBJECT_TYPE,
        object_id=found.id,
        object_label=found.name,
        details={"identity": connectors.identity_ref(found.slug, typed)},
    )


@blueprint.post("/admin/fournisseurs-identite/<int:idp_id>/personne", endpoint="person")
def person(idp_id: int) -> tuple[str, int]:
    found = _idp(idp_id)
    typed, user = _person(found)
    summary = connectors.export_user(get_session(), user) if user is not None else None
    return render_template(
        "saml_admin/person.html", section="idp", idp=found, typed=typed, summary=summary, user=user
    ), 200 if user is not None or not typed else 404


@blueprint.post("/admin/fournisseurs-identite/<int:idp_id>/personne/export", endpoint="export")
def export(idp_id: int) -> Response:
    found = _idp(idp_id)
    typed, user = _person(found)
    if user is None:
        abort(404)
    data = connectors.export_user(get_session(), user)
    _person_audit("saml.user.export", found, typed)
    get_session().commit()
    response = current_app.response_class(
        json.dumps(data, ensure_ascii=False, indent=2), mimetype="application/json"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="parcours-{user.id}.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/admin/fournisseurs-identite/<int:idp_id>/personne/effacer", endpoint="erase")
def erase(idp_id: int) -> Response | tuple[str, int]:
    """The question (without `confirm`), then the erasure."""
    found = _idp(idp_id)
    typed, user = _person(found)
    if user is None:
        abort(404)
    if request.form.get("confirm") != "1":
        return render_template(
            "saml_admin/person_erase.html", section="idp", idp=found, typed=typed, user=user
        ), 200
    session = get_session()
    current = connectors.current_user()
    if current is not None and current.id == user.id:
        flash(_("Vous ne pouvez pas effacer votre propre compte ici."), "error")
        return _back(found)
    _person_audit("saml.user.erase", found, typed)  # before: the entry survives the account
    try:
        connectors.erase_user(session, user)
    except connectors.ServiceError as refused:
        session.rollback()
        message = {
            "owns_campaigns": _(
                "Ce compte possède ou a créé des campagnes : transmettez-les d’abord."
            ),
            "last_admin": _(
                "Ce compte est le dernier administrateur d’une organisation : nommez-en un autre "
                "d’abord."
            ),
        }.get(refused.code, _("Ce compte ne peut pas être effacé."))
        flash(message, "error")
        return _back(found)
    session.commit()
    flash(_("Le compte et toutes ses données sont effacés."), "info")
    return _back(found)
