"""The SAML service provider's pages: per-IdP metadata, SP-initiated login, the assertion
consumer service, and the one-time match of a GAR student with the school's learner list.

The ACS is a cross-site POST from the IdP: exempt from our CSRF token, checked by the SAML
signature, the stored request id and the replay cache instead (`sso.saml`). Every failure is a
page with a support reference and a log line that names the reason, never the assertion.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import (
    session as flask_session,
)
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from campaigns import connectors
from config import ratelimit
from config.db import get_session, utcnow
from config.ratelimit import Limit
from config.security import csrf
from config.settings import Settings
from sso import matching, registry, saml
from sso.models import AttributeMapping, SamlEvent, SamlEventKind, SamlIdentityProvider

log = logging.getLogger(__name__)

blueprint = Blueprint("sso", __name__, template_folder="templates")

MATCH_KEY = "sso_match"  # the token of a student's pending match
BIRTHDATE_GUESSES = Limit("sso-birthdate:identity", max_hits=5, window=dt.timedelta(minutes=15))
BIRTHDATE_DAILY = Limit("sso-birthdate-day:identity", max_hits=15, window=dt.timedelta(days=1))
REQUEST_COOKIE = "saml_rq_"  # + the first characters of the request id's hash
# A school signs in from one address (its NAT): room for a big one arriving at once.
LOGINS = Limit("sso-login:address", max_hits=1200, window=dt.timedelta(minutes=1))

REFUSALS: dict[str, tuple[int, Any]] = {
    "unknown_idp": (404, _l("Ce fournisseur d’identité n’est pas connu de Parcours.")),
    "inactive": (403, _l("La connexion par ce fournisseur d’identité est désactivée.")),
    "too_large": (413, _l("La réponse reçue est trop volumineuse.")),
    "malformed": (400, _l("La réponse reçue n’est pas une réponse SAML lisible.")),
    "unsolicited": (
        400,
        _l("Parcours n’a pas demandé cette connexion. Repartez de votre ENT ou de Parcours."),
    ),
    "other_browser": (
        400,
        _l(
            "Cette connexion a été commencée dans un autre navigateur. Repartez de votre ENT "
            "(Médiacentre) dans ce navigateur-ci."
        ),
    ),
    "unknown_request": (
        400,
        _l(
            "Cette connexion a expiré ou a déjà servi. Repartez de votre ENT (Médiacentre) "
            "pour ouvrir Parcours."
        ),
    ),
    "replayed": (400, _l("Cette réponse a déjà servi. Repartez de votre ENT pour vous connecter.")),
    "invalid": (
        400,
        _l("La réponse du fournisseur d’identité n’a pas pu être vérifiée. Reconnectez-vous."),
    ),
    "attributes": (
        400,
        _l(
            "Votre ENT n’a pas transmis les informations nécessaires (identifiant, établissement, "
            "profil). Signalez-le à l’administrateur de votre ENT."
        ),
    ),
    "profile": (
        403,
        _l("Parcours est ouvert aux élèves et aux enseignants ; votre profil n’y a pas accès."),
    ),
    "school": (
        403,
        _l(
            "Votre établissement n’utilise pas Parcours par ce fournisseur d’identité. "
            "Parlez-en à votre professeur ou au référent numérique."
        ),
    ),
    "too_many": (429, _l("Trop de tentatives. Réessayez dans quelques minutes.")),
}


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    csrf.exempt(acs)
    connectors.add_sign_in_entry(_gar_entry)


def _gar_entry(session: Any, organization: connectors.Organization, next_path: str) -> str | None:
    """Students of a school served by the GAR sign in through their ENT, then go on."""
    idp = registry.gar_idp_of(session, organization.id)
    if idp is None:
        return None
    return url_for("sso.login", slug=idp.slug, next=saml.safe_next(next_path))


def _settings() -> Settings:
    settings: Settings = current_app.config["PARCOURS_SETTINGS"]
    return settings


def _idp(slug: str, *, inactive_too: bool = False) -> SamlIdentityProvider:
    idp = registry.find_idp(get_session(), slug)
    if idp is None:
        raise saml.Refused("unknown_idp", f"slug {slug[:64]!r}")
    if not idp.is_active and not inactive_too:
        raise saml.Refused("inactive", f"IdP {idp.slug} is inactive")
    return idp


def _event(idp_id: int | None, kind: SamlEventKind, summary: str) -> None:
    get_session().add(
        SamlEvent(
            idp_id=idp_id,
            kind=kind,
            summary=summary[:500],
            request_id=g.get("request_id"),
            created_at=utcnow(),
        )
    )


def _refused(refused: saml.Refused, idp_id: int | None = None) -> tuple[str, int]:
    """The page of a refusal; the log line and the IdP's event say why."""
    status, message = REFUSALS.get(refused.reason, REFUSALS["invalid"])
    log.warning("SAML refused (%s): %s", refused.reason, refused.detail or "-")
    session = get_session()
    session.rollback()
    connectors.undo_sign_in()  # a refused sign-in signs nobody in
    if refused.reason not in ("unknown_idp",):
        _event(idp_id, SamlEventKind.REFUSED, f"{refused.reason}: {refused.detail}")
        session.commit()
    page = render_template(
        "sso/refused.html", message=message, reference=g.get("request_id"), status=status
    )
    return page, status


# -- metadata and login ---------------------------------------------------------------------------


@blueprint.get("/sso/saml/<slug>/metadata.xml", endpoint="metadata")
def metadata(slug: str) -> Response:
    idp = registry.find_idp(get_session(), slug)
    if idp is None:
        abort(404)
    document = saml.metadata_xml(get_session(), idp, _settings().public_url)
    get_session().commit()  # our key, created at first use
    response = Response(document, mimetype="application/samlmetadata+xml")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.get("/sso/saml/<slug>/login", endpoint="login")
def login(slug: str) -> Response | tuple[str, int]:
    session = get_session()
    settings = _settings()
    try:
        idp = _idp(slug)
        verdict = ratelimit.hit(
            session, LOGINS, request.remote_addr or "-", secret=settings.secret_key
        )
        if not verdict.allowed:
            raise saml.Refused("too_many", "login requests rate limited")
    except saml.Refused as refused:
        return _refused(refused)
    return begin_login(idp, request.args.get("next"))


def begin_login(
    idp: SamlIdentityProvider, next_path: str | None, purpose: str = saml.LOGIN
) -> Response:
    """To the IdP with a signed AuthnRequest, its id stored and named in a cookie of this
    browser (also the administrators' connection test, `purpose=saml.TEST`)."""
    session = get_session()
    settings = _settings()
    started = saml.start_login(session, idp, settings.public_url, next_path, purpose=purpose)
    session.commit()
    response = redirect(started.url, 302)
    response.set_cookie(  # binds the response to this browser (login CSRF)
        _request_cookie(started.request_id),
        saml.request_hash(started.request_id),
        max_age=int(saml.REQUEST_LIFETIME.total_seconds()),
        path=f"/sso/saml/{idp.slug}/",
        secure=settings.https,
        httponly=True,
        samesite="None" if settings.https else "Lax",  # the ACS is a cross-site POST
    )
    return response


def _request_cookie(request_id: str) -> str:
    return REQUEST_COOKIE + saml.request_hash(request_id)[:16]


def _started_here(request_id: str) -> bool:
    """Whether this browser started the login `request_id` answers."""
    value = request.cookies.get(_request_cookie(request_id), "")
    return bool(value) and value == saml.request_hash(request_id)


# -- assertion consumer service -------------------------------------------------------------------


@blueprint.post("/sso/saml/<slug>/acs", endpoint="acs")
def acs(slug: str) -> Response | tuple[str, int]:
    session = get_session()
    settings = _settings()
    idp_id: int | None = None
    try:
        if (request.content_length or 0) > 2 * saml.RESPONSE_MAX_BYTES:
            raise saml.Refused("too_large", f"{request.content_length} bytes")
        request.max_content_length = 2 * saml.RESPONSE_MAX_BYTES
        idp = _idp(slug, inactive_too=True)  # an inactive IdP answers only a connection test
        idp_id = idp.id
        accepted = saml.consume(
            session, idp, request.form.to_dict(), settings.public_url, started_here=_started_here
        )
        if accepted.purpose == saml.TEST:
            return _test_result(idp, accepted)
        if not idp.is_active:
            raise saml.Refused("inactive", f"IdP {idp.slug} is inactive")
        response = _signed_in(idp, accepted)
    except saml.Refused as refused:
        return _refused(refused, idp_id)
    session.commit()
    return response


def _organizations(idp: SamlIdentityProvider, user: saml.SamlUser) -> list[connectors.Organization]:
    """The schools the user belongs to among those the IdP may sign users into, in the order
    the assertion names them (a teacher may teach in several); refused when there is none."""
    session = get_session()
    allowed = registry.organization_ids(session, idp)
    found: list[connectors.Organization] = []
    if user.uais:
        for uai in user.uais:
            organization = connectors.find_organization(session, uai)
            if (
                organization is not None
                and organization.id in allowed
                and organization.archived_at is None
                and organization not in found
            ):
                found.append(organization)
    elif len(allowed) == 1:
        organization = session.get(connectors.Organization, next(iter(allowed)))
        if organization is not None and organization.archived_at is None:
            found.append(organization)
    if not found:
        raise saml.Refused("school", f"UAI {user.uai or '-'} not attached to IdP {idp.slug}")
    return found


def _identity(idp: SamlIdentityProvider, read: saml.SamlUser) -> connectors.ExternalIdentity:
    return connectors.ExternalIdentity(
        provider=connectors.AuthenticationProvider.SAML,
        issuer=idp.slug,
        external_id=read.external_id,
        first_name=read.first_name,
        last_name=read.last_name,
        email=read.email,
        # GAR passes the academy's own address of a teacher; other IdPs are not trusted for it.
        email_verified=idp.mapping is AttributeMapping.GAR and read.email is not None,
        attributes={
            "role": read.role,
            "uai": read.uai,
            "classes": read.classes,
            "groups": read.groups,
        },
    )


def _test_result(idp: SamlIdentityProvider, accepted: saml.Accepted) -> Response | tuple[str, int]:
    """An administrator's connection test: what the IdP sent and what Parcours reads of it;
    nobody is signed in. Shown only to the instance administrator who started it."""
    if not connectors.is_instance_admin():
        raise saml.Refused("invalid", "a connection test answered outside an admin session")
    try:
        read: saml.SamlUser | None = saml.read_user(idp.mapping, accepted.attributes)
        schools = _organizations(idp, read) if read is not None else []
        problem = None
    except saml.Refused as refused:
        read, schools, problem = None, [], refused.reason
    _event(idp.id, SamlEventKind.LOGIN, f"connection test: {'ok' if problem is None else problem}")
    get_session().commit()
    page = render_template(
        "sso/test_result.html",
        section="idp",
        idp=idp,
        attributes=sorted(accepted.attributes.items()),
        read=read,
        schools=schools,
        problem=problem,
        problem_message=REFUSALS[problem][1] if problem in REFUSALS else None,
    )
    return page, 200


def _signed_in(idp: SamlIdentityProvider, accepted: saml.Accepted) -> Response:
    session = get_session()
    read = saml.read_user(idp.mapping, accepted.attributes)
    schools = _organizations(idp, read)
    organization = schools[0]
    identity = _identity(idp, read)
    ref = connectors.identity_ref(idp.slug, read.external_id)
    log.info("SAML login of %s (%s) through %s", ref, read.role, idp.slug)
    _event(idp.id, SamlEventKind.LOGIN, f"{read.role} {ref} into {organization.name}")
    if read.role == "teacher":
        user = connectors.sign_in_external(session, identity)
        try:
            for school in schools:  # every school of the assertion the IdP serves
                connectors.ensure_member(session, school, user)
        except connectors.EmailNotProven:
            raise saml.Refused("invalid", "teacher account with an unproven address") from None
        connectors.start_session(user)
        return redirect(accepted.next_path or connectors.panel_url(organization), 303)
    known = connectors.find_external_user(session, identity)
    if known is not None:
        user = connectors.sign_in_external(session, identity)
        if matching.learner_of(session, organization, user) is not None:
            connectors.start_session(user)
            return redirect(accepted.next_path or url_for("journey.my_campaigns"), 303)
    # Not known, or known but not yet matched in this school: the birth date first, with
    # nobody signed in meanwhile (a previous user of a shared computer is signed out).
    connectors.end_session()
    token = matching.hold(session, idp, organization, identity, accepted.next_path)
    flask_session[MATCH_KEY] = token
    return redirect(url_for("sso.match"), 303)


# -- matching a student with the school's learner list ------------------------------------------


@blueprint.route("/sso/rattachement", methods=["GET", "POST"], endpoint="match")
def match() -> Response | str | tuple[str, int]:
    session = get_session()
    pending = matching.pending(session, str(flask_session.get(MATCH_KEY, "")))
    if pending is None:
        return _refused(saml.Refused("unknown_request", "no pending match (expired or used)"))
    organization = session.get(connectors.Organization, pending.organization_id)
    if organization is None:
        abort(404)
    error: str | None = None
    form = {"day": "", "month": "", "year": ""}
    if request.method == "POST":
        if request.form.get("action") == "skip":
            return _go_on_without(pending)
        form = {key: request.form.get(key, "").strip()[:4] for key in form}
        birthdate = connectors.parse_birthdate(form["day"], form["month"], form["year"])
        if birthdate is None:
            error = "date"
        else:
            key = f"{pending.idp_id}:{pending.identity['external_id']}"
            allowed = connectors.count_guess(
                session,
                organization,
                matching.identity_of(pending),
                (BIRTHDATE_GUESSES, BIRTHDATE_DAILY),
                key,
                secret=_settings().secret_key,
            )
            if not allowed:
                session.commit()
                return _match_page(organization, form, "too_many", 429)
            outcome = matching.match_and_sign_in(session, pending, organization, birthdate)
            if outcome.user is not None:
                flask_session.pop(MATCH_KEY, None)
                connectors.start_session(outcome.user)
                _event(pending.idp_id, SamlEventKind.LOGIN, f"matched ({outcome.how})")
                next_path = pending.next_path
                session.delete(pending)
                session.commit()
                return redirect(next_path or url_for("journey.my_campaigns"), 303)
            error = outcome.problem
            if error == "taken":
                _event(pending.idp_id, SamlEventKind.REFUSED, "match: learner linked elsewhere")
                error = "none"  # the page must not confirm someone else's birth date
            session.commit()
    status = 200 if error is None else 409 if error == "already" else 400
    return _match_page(organization, form, error, status)


def _go_on_without(pending: Any) -> Response:
    """The student could not be matched and goes on with an account of their own (a teacher
    can link it to the list later): their campaigns by code."""
    session = get_session()
    identity = matching.identity_of(pending)
    user = connectors.sign_in_external(session, identity)
    flask_session.pop(MATCH_KEY, None)
    connectors.start_session(user)
    _event(pending.idp_id, SamlEventKind.LOGIN, "not matched: went on without")
    next_path = pending.next_path
    session.delete(pending)
    session.commit()
    return redirect(next_path or url_for("journey.my_campaigns"), 303)


def _match_page(
    organization: connectors.Organization, form: dict[str, str], error: str | None, status: int
) -> tuple[str, int]:
    return (
        render_template("sso/match.html", organization=organization, form=form, error=error),
        status,
    )
