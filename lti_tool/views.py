"""The tool's endpoints: OIDC login, launch (resource links and deep linking), our public keys
and the values an administrator pastes into the LMS.

Login and launch come from the platform (cross-site forms): they are exempt from our CSRF
check, which the single-use state and nonce replace. Everything they lead to is `@frameable`.
Refusals are pages that say what to do, with a support reference; the log line says why.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from campaigns import connectors
from config import ratelimit
from config.db import execute_dml, get_session, insert_new, table_of, utcnow
from config.ratelimit import Limit
from config.security import csrf, frameable
from config.settings import Settings
from lti_tool import grades, keys, matching, registration, registry, roster
from lti_tool.http import TimeoutSession
from lti_tool.launch import (
    LTI,
    STATE_LIFETIME,
    STORAGE_CHECKED,
    LaunchRefused,
    Login,
    StorageCheck,
    ToolLaunch,
    start_login,
    state_cookie_name,
    state_hash,
)
from lti_tool.models import (
    GradeStatus,
    LtiDeployment,
    LtiEvent,
    LtiEventKind,
    LtiLearner,
    LtiLoginState,
    LtiPendingMatch,
    LtiPlatform,
    LtiResourceLink,
)
from lti_tool.services import origin_of

log = logging.getLogger(__name__)

blueprint = Blueprint(
    "lti",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/lti/static",
)

AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
DEEP_LINK_LIFETIME = 3600  # seconds an instructor has to pick a campaign
# Roles that make a launch an instructor's: context (course) roles and the platform's admins.
TEACHING_ROLES = ("Instructor", "ContentDeveloper", "Administrator", "TeachingAssistant")

REFUSALS: dict[str, tuple[int, Any]] = {
    "bad_login": (400, _l("Cette demande de connexion LTI est incomplète ou mal formée.")),
    "unknown_platform": (
        403,
        _l(
            "Cette plateforme n’est pas enregistrée dans Parcours. L’administrateur de la "
            "plateforme doit l’enregistrer auprès de l’administrateur de Parcours."
        ),
    ),
    "inactive_platform": (
        403,
        _l(
            "Cette plateforme est en attente d’activation dans Parcours : l’administrateur de "
            "Parcours doit l’activer."
        ),
    ),
    "unknown_deployment": (
        403,
        _l(
            "Ce déploiement de l’outil n’est rattaché à aucun établissement dans Parcours : "
            "l’administrateur de Parcours doit l’ajouter."
        ),
    ),
    "no_state": (
        400,
        _l(
            "Cette connexion n’a pas été demandée par Parcours. Relancez l’activité depuis la plateforme."
        ),
    ),
    "storage_missing": (
        400,
        _l(
            "Parcours n’a pas pu vérifier que cette connexion a été demandée par ce navigateur. "
            "Relancez l’activité depuis la plateforme."
        ),
    ),
    "expired": (400, _l("Cette connexion a expiré. Relancez l’activité depuis la plateforme.")),
    "replayed": (
        400,
        _l("Cette connexion a déjà été utilisée. Relancez l’activité depuis la plateforme."),
    ),
    "bad_nonce": (
        400,
        _l("Cette connexion n’est pas valide. Relancez l’activité depuis la plateforme."),
    ),
    "bad_token": (400, _l("Le message de la plateforme n’est pas un lancement LTI 1.3 valide.")),
    "bad_signature": (
        400,
        _l("La signature du message de la plateforme n’a pas pu être vérifiée."),
    ),
    "bad_message": (400, _l("Le message de la plateforme n’est pas un lancement LTI 1.3 valide.")),
    "platform_down": (
        502,
        _l("La plateforme ne répond pas : Parcours ne peut pas vérifier ce lancement. Réessayez."),
    ),
    "anonymous": (
        403,
        _l(
            "La plateforme a lancé Parcours sans dire qui vous êtes (lancement anonyme). Parcours "
            "enregistre des résultats personnels : demandez à l’administrateur de la plateforme "
            "de transmettre l’identifiant des utilisateurs à l’outil."
        ),
    ),
    "unsupported": (400, _l("Parcours ne sait pas traiter ce type de message LTI.")),
    "teachers_only": (
        403,
        _l("Seuls les enseignants de ce cours peuvent choisir le parcours de cette activité."),
    ),
    "no_campaign": (
        409,
        _l(
            "Cette activité n’est liée à aucun parcours pour l’instant. Votre enseignant doit "
            "choisir le parcours de l’activité."
        ),
    ),
    "campaign_elsewhere": (
        409,
        _l(
            "Le parcours indiqué par cette activité n’existe pas ou n’appartient pas à "
            "l’établissement de la plateforme. Votre enseignant doit corriger l’activité."
        ),
    ),
    "archived": (410, _l("Ce parcours a été archivé par son organisateur.")),
    "learner_taken": (
        409,
        _l(
            "Vous participez déjà à ce parcours avec un autre compte. Demandez à votre "
            "enseignant de vous aider."
        ),
    ),
    "organization_archived": (
        403,
        _l("L’établissement de cette plateforme est archivé dans Parcours."),
    ),
    "link_expired": (
        400,
        _l("Cette page a expiré. Relancez l’ajout de l’activité depuis la plateforme."),
    ),
    "match_expired": (
        400,
        _l("Cette page a expiré ou a déjà servi. Relancez l’activité depuis votre cours."),
    ),
    "match_elsewhere": (
        400,
        _l(
            "Cette page a été ouverte dans un autre navigateur que celui du lancement. Relancez "
            "l’activité depuis votre cours."
        ),
    ),
}


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    connectors.add_campaign_section(roster.campaign_section)


def _settings() -> Settings:
    settings: Settings = current_app.config["PARCOURS_SETTINGS"]
    return settings


def _public(path: str) -> str:
    return _settings().public_url.rstrip("/") + path


def _own_origin() -> str:
    origin = origin_of(_settings().public_url)
    assert origin is not None  # noqa: S101 - settings check PUBLIC_URL
    return origin


def _http() -> TimeoutSession:
    http: TimeoutSession | None = current_app.extensions.get("parcours.lti_http")
    if http is None:
        http = current_app.extensions["parcours.lti_http"] = TimeoutSession()
    return http


_events = table_of(LtiEvent)
_NEW_EVENT = insert(_events).values(
    {
        name: bindparam(name, type_=_events.c[name].type)
        for name in ("platform_id", "kind", "summary", "request_id", "created_at")
    }
)


def _event(platform_id: int | None, kind: LtiEventKind, summary: str) -> None:
    get_session().execute(
        _NEW_EVENT,
        {
            "platform_id": platform_id,
            "kind": kind,
            "summary": summary[:500],
            "request_id": g.get("request_id"),
            "created_at": utcnow(),
        },
    )


def _refused(refused: LaunchRefused) -> tuple[str, int]:
    """The page of a refusal; the log line and the platform's event say why (the refusal's
    state stays used: a replay is refused too)."""
    status, message = REFUSALS.get(refused.reason, REFUSALS["bad_message"])
    log.warning("LTI refused (%s): %s", refused.reason, refused.detail or "-")
    session = get_session()
    session.rollback()  # nothing of a refused launch is kept…
    connectors.undo_sign_in()  # …not even its sign-in…
    state = request.form.get("state", "") if request.method == "POST" else ""
    if state and len(state) <= 128:  # …but its state is spent: a replay is refused too
        execute_dml(
            session,
            update(LtiLoginState)
            .where(LtiLoginState.state_hash == state_hash(state), LtiLoginState.used_at.is_(None))
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False),
        )
    _event(refused.platform_id, LtiEventKind.REFUSED, f"{refused.reason}: {refused.detail}")
    session.commit()
    return (
        render_template(
            "lti/refused.html", message=message, status=status, reference=g.get("request_id")
        ),
        status,
    )


# -- OIDC login -----------------------------------------------------------------------------------


@blueprint.route("/lti/login", methods=["GET", "POST"], endpoint="login")
@csrf.exempt  # type: ignore[untyped-decorator]
@frameable
def login() -> Response | tuple[str, int]:
    params = {key: request.values.get(key, "")[:2048] for key in request.values}
    session = get_session()
    try:
        started = start_login(
            session, params, launch_url=_public("/lti/launch"), own_origin=_own_origin()
        )
    except LaunchRefused as refused:
        return _refused(refused)
    session.commit()
    response = _to_platform(started)
    _set_lti_cookie(response, state_cookie_name(started.state), started.state, STATE_LIFETIME)
    return response


def _to_platform(started: Login) -> Response:
    """On to the platform's authorization endpoint: a redirect, or a page that first puts the
    state and nonce in the platform's storage when the platform offered one."""
    if started.storage_target is None:
        return redirect(started.redirect_url, 302)
    page = render_template(
        "lti/storage.html",
        mode="put",
        target=started.storage_target,
        origin=origin_of(started.auth_login_url) or "",
        state=started.state,
        nonce=started.nonce,
        next_url=started.redirect_url,
    )
    return Response(page, mimetype="text/html")


def _storage_check(check: StorageCheck) -> tuple[str, int]:
    """The page that reads the state and nonce back from the platform's storage in this browser
    and posts the launch again, or says the launch cannot be trusted."""
    log.info("LTI launch without its state cookie: checking the platform storage")
    session = get_session()
    platform = session.get(LtiPlatform, check.platform_id)
    session.rollback()
    page = render_template(
        "lti/storage.html",
        mode="check",
        target=check.target,
        origin=origin_of(platform.auth_login_url) if platform is not None else "",
        state=request.form.get("state", ""),
        nonce=check.nonce,
        fields={
            "id_token": request.form.get("id_token", ""),
            "state": request.form.get("state", ""),
        },
        checked_field=STORAGE_CHECKED,
    )
    return page, 200


def _storage_refused(state: str) -> tuple[str, int]:
    """The storage check's page found no state or nonce in the platform's storage."""
    platform_id = get_session().scalar(
        select(LtiLoginState.platform_id).where(LtiLoginState.state_hash == state_hash(state))
    )
    return _refused(
        LaunchRefused("storage_missing", "not in the platform storage", platform_id=platform_id)
    )


# -- launch ---------------------------------------------------------------------------------------


def _roles(claims: dict[str, Any]) -> list[str]:
    roles = claims.get(LTI + "roles")
    return [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []


def is_teacher(roles: list[str]) -> bool:
    """Course roles (full URIs or short names) that may manage the activity."""
    for role in roles:
        name = role.rsplit("#", 1)[-1].rsplit("/", 1)[-1]
        if name in TEACHING_ROLES:
            return True
    return False


def _text_claim(claims: dict[str, Any], name: str, limit: int = 255) -> str:
    value = claims.get(name)
    return " ".join(value.split())[:limit] if isinstance(value, str) else ""


@blueprint.post("/lti/launch", endpoint="launch")
@csrf.exempt  # type: ignore[untyped-decorator]
@frameable
def launch() -> Response | tuple[str, int]:
    session = get_session()
    state = request.form.get("state", "")
    if request.form.get(STORAGE_CHECKED) == "refused" and 0 < len(state) <= 128:
        return _storage_refused(state)
    cookie = request.cookies.get(state_cookie_name(state)) if state else None
    tool_launch = ToolLaunch(
        session,
        request.form,
        _http(),
        state_cookie=cookie,
        storage_checked=request.form.get(STORAGE_CHECKED) == "1",
    )
    try:
        tool_launch.validate()
        claims = tool_launch.claims
        platform = tool_launch.platform
        assert platform is not None  # noqa: S101 - validated
        deployment = tool_launch.deployment
        assert deployment is not None  # noqa: S101 - validated
        organization = tool_launch.organization
        if organization is None or organization.archived_at is not None:
            raise LaunchRefused("organization_archived", platform_id=platform.id)
        message_type = claims.get(LTI + "message_type")
        if message_type == "LtiResourceLinkRequest":
            response = _resource_launch(
                platform, deployment, organization, claims, cookies=cookie is not None
            )
        elif message_type == "LtiDeepLinkingRequest":
            response = _deep_linking_request(platform, deployment, organization, claims)
        else:
            raise LaunchRefused("unsupported", str(message_type), platform_id=platform.id)
    except StorageCheck as check:
        return _storage_check(check)
    except LaunchRefused as refused:
        return _refused(refused)
    session.commit()
    return response


def _identity(platform: LtiPlatform, claims: dict[str, Any]) -> connectors.ExternalIdentity:
    context = claims.get(LTI + "context")
    email = claims.get("email")
    return connectors.ExternalIdentity(
        provider=connectors.AuthenticationProvider.LTI,
        issuer=platform.issuer,
        external_id=str(claims["sub"]),
        first_name=_text_claim(claims, "given_name"),
        last_name=_text_claim(claims, "family_name"),
        # An LMS passes on what its users typed: never vouched for.
        email=email if isinstance(email, str) else None,
        email_verified=False,
        attributes={
            "roles": _roles(claims),
            "name": _text_claim(claims, "name"),
            "context": context.get("title") if isinstance(context, dict) else None,
        },
    )


_LINK = select(LtiResourceLink).where(
    LtiResourceLink.deployment_id == bindparam("deployment_id"),
    LtiResourceLink.resource_link_id == bindparam("resource_link_id"),
)
_CAMPAIGN_OF_CODE = select(connectors.Campaign).where(connectors.Campaign.code == bindparam("code"))


def _resource_link(deployment: LtiDeployment, claims: dict[str, Any]) -> LtiResourceLink:
    """The placement this launch comes from, created at its first launch, its services and
    titles refreshed at each."""
    session = get_session()
    link_claim = claims.get(LTI + "resource_link") or {}
    link_id = str(link_claim.get("id"))[:255]
    key = {"deployment_id": deployment.id, "resource_link_id": link_id}
    link = session.scalars(_LINK, key).one_or_none()
    if link is None:
        try:
            with session.begin_nested():
                link = LtiResourceLink(deployment_id=deployment.id, resource_link_id=link_id)
                session.add(link)
        except IntegrityError:  # the class launched it at the same moment
            link = session.scalars(_LINK, key).one()
    fresh: dict[str, Any] = {"title": _text_claim(link_claim, "title")}
    context = claims.get(LTI + "context")
    if isinstance(context, dict):
        fresh["context_id"] = str(context.get("id") or "")[:255] or None
        fresh["context_title"] = _text_claim(context, "title") or None
    ags = claims.get(AGS)
    if isinstance(ags, dict):
        fresh["lineitem_url"] = _url_claim(ags, "lineitem") or link.lineitem_url
        fresh["lineitems_url"] = _url_claim(ags, "lineitems")
        scopes = ags.get("scope")
        fresh["ags_scopes"] = (
            [s for s in scopes if isinstance(s, str)] if isinstance(scopes, list) else []
        )
    nrps = claims.get(NRPS)
    if isinstance(nrps, dict):
        fresh["memberships_url"] = _url_claim(nrps, "context_memberships_url")
    _refresh(link, fresh)
    return link


def _refresh(row: Any, values: dict[str, Any]) -> None:
    """Write the values that changed (most launches change nothing: no UPDATE, no flush)."""
    changed = {name: value for name, value in values.items() if getattr(row, name) != value}
    for name, value in changed.items():
        setattr(row, name, value)
    if changed:
        get_session().flush()


def _url_claim(claim: dict[str, Any], name: str) -> str | None:
    value = claim.get(name)
    if not isinstance(value, str):
        return None
    try:
        return registry.check_url(value, name)
    except connectors.InvalidInput:
        return None


def _linked_campaign(
    link: LtiResourceLink, organization: connectors.Organization, claims: dict[str, Any]
) -> connectors.Campaign | None:
    """The campaign the placement opens: named by its `campaign_code` custom parameter (what
    deep linking writes), else the one chosen earlier; it must be the organization's."""
    session = get_session()
    custom = claims.get(LTI + "custom")
    code = custom.get("campaign_code") if isinstance(custom, dict) else None
    if isinstance(code, str) and code.strip():
        campaign = session.scalars(
            _CAMPAIGN_OF_CODE, {"code": "".join(code.split()).upper()}
        ).one_or_none()
        if campaign is None or campaign.organization_id != organization.id:
            raise LaunchRefused("campaign_elsewhere", f"campaign_code {code[:20]!r}")
        _refresh(link, {"campaign_id": campaign.id})
        return campaign
    if link.campaign_id is None:
        return None
    return session.get(connectors.Campaign, link.campaign_id)


_learners = table_of(LtiLearner)
_RELAUNCHED = (
    update(_learners)
    .where(
        _learners.c.resource_link_id == bindparam("link"),
        _learners.c.user_id == bindparam("user"),
    )
    .values(last_launch_at=bindparam("now"))
)


def _remember_learner(link: LtiResourceLink, user: connectors.User, sub: str) -> None:
    """The (link, user) pair the gradebook is written for: inserted at the first launch (a
    double launch finds it), its last launch noted at each."""
    session = get_session()
    now = utcnow()
    values = {
        "resource_link_id": link.id,
        "user_id": user.id,
        "sub": sub[:255],
        "first_launch_at": now,
        "last_launch_at": now,
        "grade_status": GradeStatus.NONE,
        "grade_attempts": 0,
    }
    if insert_new(session, LtiLearner, ["resource_link_id", "user_id"], values) is None:
        session.execute(_RELAUNCHED, {"link": link.id, "user": user.id, "now": now})


def _resource_launch(
    platform: LtiPlatform,
    deployment: LtiDeployment,
    organization: connectors.Organization,
    claims: dict[str, Any],
    *,
    cookies: bool,
) -> Response:
    session = get_session()
    identity = _identity(platform, claims)
    link = _resource_link(deployment, claims)
    campaign = _linked_campaign(link, organization, claims)
    teacher = is_teacher(_roles(claims))
    ref = connectors.identity_ref(platform.issuer, identity.external_id)
    if (
        not teacher
        and campaign is not None
        and matching.must_match(session, platform, organization, identity)
    ):
        # The birth date first, with nobody signed in meanwhile (a shared computer).
        connectors.end_session()
        token, browser = matching.hold(
            session, platform, organization, link, campaign, identity, cookies=cookies
        )
        _event(
            platform.id,
            LtiEventKind.LAUNCH,
            f"apprenant {ref}, lien {link.resource_link_id} : date de naissance demandée",
        )
        asked = redirect(url_for("lti.match", t=token), 303)
        if browser is not None:
            _set_lti_cookie(asked, MATCH_COOKIE, browser, matching.PENDING_LIFETIME)
        return asked
    user = connectors.sign_in_external(session, identity)
    connectors.start_session(user)
    _event(
        platform.id,
        LtiEventKind.LAUNCH,
        f"{'enseignant' if teacher else 'apprenant'} {ref}, lien {link.resource_link_id}",
    )
    if teacher:
        connectors.ensure_member(session, organization, user)
        if campaign is None:
            return redirect(_picker_url(platform, deployment, user, link=link), 303)
        roster.remember_course(link)
        return _landing(platform, user, connectors.panel_url(organization, campaign), cookies)
    if campaign is None:
        raise LaunchRefused("no_campaign", f"link {link.resource_link_id}", platform_id=platform.id)
    return _learner_lands(platform, link, campaign, user, identity.external_id, cookies)


def _learner_lands(
    platform: LtiPlatform,
    link: LtiResourceLink,
    campaign: connectors.Campaign,
    user: connectors.User,
    sub: str,
    cookies: bool,
) -> Response:
    """The signed-in learner's way into the campaign of the link, remembered for the
    gradebook."""
    _remember_learner(link, user, sub)
    try:
        entry = connectors.enter_campaign(get_session(), user, campaign)
    except connectors.NotAllowed as refused:
        raise LaunchRefused(
            "archived" if refused.code == "archived" else "learner_taken",
            refused.code,
            platform_id=platform.id,
        ) from None
    return _landing(platform, user, entry.url, cookies)


# -- a learner's first launch matched with the school's learner list ----------------------------

MATCH_COOKIE = "lti_rapprochement"  # binds a held launch's page to the browser that launched
BIRTHDATE_GUESSES = Limit("lti-birthdate:identity", max_hits=5, window=dt.timedelta(minutes=15))
BIRTHDATE_DAILY = Limit("lti-birthdate-day:identity", max_hits=15, window=dt.timedelta(days=1))


@blueprint.route("/lti/rapprochement", methods=["GET", "POST"], endpoint="match")
@csrf.exempt  # type: ignore[untyped-decorator]  # the launch's own token protects the form
@frameable
def match() -> Response | tuple[str, int]:
    """The birth-date page of a held launch (`lti_tool.matching`). Its token, random, single
    use and bound to the launch, comes in the address and the form: the LMS frame may keep none
    of our cookies, so it also stands for the CSRF token."""
    session = get_session()
    token = request.values.get("t", "")[:128]
    held = matching.pending(session, token)
    if held is None:
        return _refused(LaunchRefused("match_expired", "no pending match (expired or used)"))
    if not matching.same_browser(held, request.cookies.get(MATCH_COOKIE)):
        return _refused(
            LaunchRefused(
                "match_elsewhere", "pending match of another browser", platform_id=held.platform_id
            )
        )
    organization = session.get(connectors.Organization, held.organization_id)
    if organization is None:
        abort(404)
    error: str | None = None
    form = {"day": "", "month": "", "year": ""}
    if request.method == "POST":
        if request.form.get("action") == "skip":
            user = connectors.sign_in_external(session, matching.identity_of(held))
            return _matched(held, user, "sans rapprochement")
        form = {key: request.form.get(key, "").strip()[:4] for key in form}
        birthdate = connectors.parse_birthdate(form["day"], form["month"], form["year"])
        if birthdate is None:
            error = "date"
        else:
            key = f"{held.platform_id}:{held.identity['external_id']}"
            allowed = connectors.count_guess(
                session,
                organization,
                matching.identity_of(held),
                (BIRTHDATE_GUESSES, BIRTHDATE_DAILY),
                key,
                secret=_settings().secret_key,
            )
            if not allowed:
                session.commit()
                return _match_page(held, organization, token, form, "too_many", 429)
            outcome = matching.match(session, held, organization, birthdate)
            if outcome.user is not None:
                return _matched(held, outcome.user, f"rapproché ({outcome.how})")
            error = outcome.problem
            if error == "taken":
                _event(held.platform_id, LtiEventKind.REFUSED, "rapprochement : élève déjà lié")
                error = "none"  # the page must not confirm someone else's birth date
            session.commit()
    status = 200 if error is None else 409 if error == "already" else 400
    return _match_page(held, organization, token, form, error, status)


def _matched(held: LtiPendingMatch, user: connectors.User, how: str) -> Response | tuple[str, int]:
    """The held launch goes on, signed in as `user`: into the campaign, as any launch."""
    session = get_session()
    platform = session.get(LtiPlatform, held.platform_id)
    link = session.get(LtiResourceLink, held.resource_link_id)
    campaign = session.get(connectors.Campaign, held.campaign_id)
    identity = matching.identity_of(held)
    cookies = held.cookies
    if platform is None or link is None or campaign is None or not matching.claim(session, held):
        return _refused(LaunchRefused("match_expired", "pending match used or its link gone"))
    if not platform.is_active:
        return _refused(LaunchRefused("inactive_platform", "deactivated", platform_id=platform.id))
    if link.campaign_id != campaign.id:  # the link was pointed elsewhere meanwhile
        return _refused(LaunchRefused("match_expired", "link changed", platform_id=platform.id))
    connectors.start_session(user)
    ref = connectors.identity_ref(platform.issuer, identity.external_id)
    _event(
        platform.id,
        LtiEventKind.LAUNCH,
        f"apprenant {ref}, lien {link.resource_link_id}, {how}",
    )
    try:
        response = _learner_lands(platform, link, campaign, user, identity.external_id, cookies)
    except LaunchRefused as refused:
        return _refused(refused)
    session.commit()
    return response


def _set_lti_cookie(response: Response, name: str, value: str, lifetime: dt.timedelta) -> None:
    """A cookie of the launch's own pages (`/lti/`), usable in the LMS frame over https."""
    settings = _settings()
    response.set_cookie(
        name,
        value,
        max_age=int(lifetime.total_seconds()),
        path="/lti/",
        secure=settings.https,
        httponly=True,
        samesite="None" if settings.https else "Lax",
        partitioned=settings.https,
    )


def _match_page(
    held: LtiPendingMatch,
    organization: connectors.Organization,
    token: str,
    form: dict[str, str],
    error: str | None,
    status: int,
) -> Response:
    page = Response(
        render_template(
            "lti/match.html",
            organization=organization,
            first_name=str(held.identity.get("first_name") or ""),
            token=token,
            form=form,
            error=error,
        ),
        status,
    )
    page.headers["Cache-Control"] = "no-store"  # it carries the launch's token
    return page


# -- when the LMS iframe refuses our cookie ------------------------------------------------------

HANDOFF_LIFETIME = dt.timedelta(minutes=2)


def _handoff_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="lti-handoff")


def _landing(platform: LtiPlatform, user: connectors.User, target: str, cookies: bool) -> Response:
    """Straight to `target` when the browser kept the login's state cookie (it keeps ours in
    this frame); by `/lti/suite` otherwise, which checks the session cookie came back."""
    if cookies:
        return redirect(target, 303)
    return redirect(_handoff_url(platform, user, target), 303)


def _handoff_url(platform: LtiPlatform, user: connectors.User, target: str) -> str:
    """Where a launch sends the browser before its destination: a short-lived, single-use link
    that opens Parcours in a tab of its own when the LMS iframe drops our session cookie (a
    browser that blocks third-party cookies)."""
    key = secrets.token_urlsafe(24)
    now = utcnow()
    get_session().add(
        LtiLoginState(
            state_hash=state_hash(key),
            nonce="handoff",
            platform_id=platform.id,
            created_at=now,
            expires_at=now + HANDOFF_LIFETIME,
        )
    )
    token = _handoff_serializer().dumps({"u": user.id, "k": key, "n": target})
    return url_for("lti.handoff", t=token)


@blueprint.get("/lti/suite", endpoint="handoff")
@frameable
def handoff() -> Response | tuple[str, int] | str:
    try:
        found = _handoff_serializer().loads(
            request.args.get("t", ""), max_age=int(HANDOFF_LIFETIME.total_seconds())
        )
    except SignatureExpired:
        return _handoff_refused()
    except BadSignature:
        abort(404)
    target = str(found.get("n", ""))
    if not target.startswith("/") or target.startswith("//"):
        abort(404)
    user = connectors.current_user()
    if user is not None and user.id == found.get("u"):
        return redirect(target, 303)  # the cookie made it: on to the destination
    if request.args.get("onglet") != "1":
        return render_template(
            "lti/open_in_tab.html", url=url_for("lti.handoff", t=request.args["t"], onglet="1")
        )
    session = get_session()
    used = execute_dml(
        session,
        update(LtiLoginState)
        .where(
            LtiLoginState.state_hash == state_hash(str(found.get("k", ""))),
            LtiLoginState.nonce == "handoff",
            LtiLoginState.used_at.is_(None),
            LtiLoginState.expires_at > utcnow(),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False),
    ).rowcount
    signed = session.get(connectors.User, found.get("u")) if used else None
    if signed is None:
        session.rollback()
        return _handoff_refused()
    connectors.start_session(signed)
    session.commit()
    return redirect(target, 303)


def _handoff_refused() -> tuple[str, int]:
    message = _("Ce lien a expiré ou a déjà servi. Relancez l’activité depuis la plateforme.")
    return (
        render_template(
            "lti/refused.html", message=message, status=410, reference=g.get("request_id")
        ),
        410,
    )


# -- deep linking ---------------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="lti-deep-link")


def _picker_url(
    platform: LtiPlatform,
    deployment: LtiDeployment,
    user: connectors.User,
    *,
    link: LtiResourceLink | None = None,
    settings: dict[str, Any] | None = None,
) -> str:
    """The campaign picker, its request carried by a signed, expiring token rather than by the
    session cookie (which the LMS iframe may lose)."""
    token = _serializer().dumps(
        {
            "platform": platform.id,
            "deployment": deployment.id,
            "user": user.id,
            "link": link.id if link is not None else None,
            "settings": settings,
        }
    )
    return f"/lti/choisir-un-parcours?t={token}"


def _deep_linking_request(
    platform: LtiPlatform,
    deployment: LtiDeployment,
    organization: connectors.Organization,
    claims: dict[str, Any],
) -> Response:
    session = get_session()
    if not is_teacher(_roles(claims)):
        raise LaunchRefused(
            "teachers_only", "deep linking by a non-teacher", platform_id=platform.id
        )
    settings = claims.get(DL + "deep_linking_settings")
    if not isinstance(settings, dict) or not isinstance(settings.get("deep_link_return_url"), str):
        raise LaunchRefused("bad_message", "no deep_link_return_url", platform_id=platform.id)
    return_url = _url_claim(settings, "deep_link_return_url")
    if return_url is None:
        raise LaunchRefused("bad_message", "bad deep_link_return_url", platform_id=platform.id)
    identity = _identity(platform, claims)
    user = connectors.sign_in_external(session, identity)
    connectors.ensure_member(session, organization, user)
    connectors.start_session(user)
    kept = {
        "return_url": return_url,
        "data": settings.get("data") if isinstance(settings.get("data"), str) else None,
        "deployment_id": claims[LTI + "deployment_id"],
    }
    return redirect(_picker_url(platform, deployment, user, settings=kept), 303)


def _picker_request() -> dict[str, Any]:
    token = request.values.get("t", "")
    try:
        found: dict[str, Any] = _serializer().loads(token, max_age=DEEP_LINK_LIFETIME)
    except SignatureExpired:
        raise LaunchRefused("link_expired", "picker token expired") from None
    except BadSignature:
        abort(404)
    return found


@blueprint.route("/lti/choisir-un-parcours", methods=["GET", "POST"], endpoint="pick")
@csrf.exempt  # type: ignore[untyped-decorator]  # the signed token stands for it
@frameable
def pick() -> Response | tuple[str, int] | str:
    session = get_session()
    try:
        wanted = _picker_request()
    except LaunchRefused as refused:
        return _refused(refused)
    platform = session.get(LtiPlatform, wanted["platform"])
    deployment = session.get(LtiDeployment, wanted["deployment"])
    user = session.get(connectors.User, wanted["user"])
    if platform is None or deployment is None or user is None or not platform.is_active:
        abort(404)
    organization = session.get(connectors.Organization, deployment.organization_id)
    if organization is None:
        abort(404)
    campaigns = connectors.open_campaigns(session, organization)
    profiles = connectors.usable_target_profiles(session, organization)
    errors: dict[str, str] = {}
    form = {"name": "", "profile": ""}
    if request.method == "POST":
        chosen: connectors.Campaign | None = None
        if request.form.get("action") == "create":
            form = {k: request.form.get(k, "").strip()[:255] for k in form}
            chosen = _create_campaign(organization, user, form, profiles, errors)
        else:
            wanted_id = request.form.get("campaign", "")
            chosen = next((c for c in campaigns if str(c.id) == wanted_id), None)
            if chosen is None:
                errors["campaign"] = _("Choisissez un parcours dans la liste.")
        if chosen is not None:
            if wanted.get("settings"):
                return _deep_linking_response(platform, wanted["settings"], chosen)
            link = session.get(LtiResourceLink, wanted.get("link"))
            if link is None or link.deployment_id != deployment.id:
                abort(404)
            link.campaign_id = chosen.id
            session.commit()
            roster.remember_course(link)
            return redirect(connectors.panel_url(organization, chosen), 303)
        session.rollback()
    return (
        render_template(
            "lti/pick.html",
            campaigns=campaigns,
            profiles=profiles,
            organization=organization,
            token=request.values.get("t", ""),
            errors=errors,
            form=form,
            deep_linking=bool(wanted.get("settings")),
        ),
        400 if errors else 200,
    )


def _create_campaign(
    organization: connectors.Organization,
    user: connectors.User,
    form: dict[str, str],
    profiles: list[Any],
    errors: dict[str, str],
) -> connectors.Campaign | None:
    profile = next((p for p in profiles if str(p.id) == form["profile"]), None)
    if not form["name"]:
        errors["name"] = _("Donnez un nom au parcours.")
    if profile is None:
        errors["profile"] = _("Choisissez ce que le parcours évalue.")
    if errors:
        return None
    try:
        return connectors.create_campaign(
            get_session(),
            organization=organization,
            creator=user,
            name=form["name"],
            type=connectors.CampaignType.ASSESSMENT,
            target_profile=profile,
        )
    except connectors.InvalidInput:
        errors["name"] = _("Ce nom n’est pas accepté (255 caractères au plus).")
        return None


def _deep_linking_response(
    platform: LtiPlatform, settings: dict[str, Any], campaign: connectors.Campaign
) -> Response:
    """The signed LtiDeepLinkingResponse, posted back to the platform by the browser."""
    session = get_session()
    key = keys.signing_key(session)
    now = int(time.time())
    title = campaign.title or campaign.name
    claims: dict[str, Any] = {
        "iss": platform.client_id,
        "aud": platform.issuer,
        "iat": now,
        "exp": now + 600,
        "nonce": keys.new_nonce(),
        LTI + "deployment_id": settings["deployment_id"],
        LTI + "message_type": "LtiDeepLinkingResponse",
        LTI + "version": "1.3.0",
        DL + "content_items": [
            {
                "type": "ltiResourceLink",
                "title": title,
                "url": _public("/lti/launch"),
                "custom": {"campaign_code": campaign.code},
                "lineItem": {
                    "scoreMaximum": 100,
                    "label": title,
                    "resourceId": campaign.code,
                    "tag": "parcours",
                },
            }
        ],
        DL + "msg": _("Parcours « %(title)s » ajouté.", title=title),
    }
    if settings.get("data"):
        claims[DL + "data"] = settings["data"]
    token = jwt.encode(claims, key.private_key_pem, algorithm="RS256", headers={"kid": key.kid})
    _event(platform.id, LtiEventKind.DEEP_LINK, f"parcours {campaign.code} ajouté")
    session.commit()
    response = current_app.make_response(
        render_template("lti/deep_link_return.html", return_url=settings["return_url"], jwt=token)
    )
    return_origin = origin_of(settings["return_url"]) or ""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"object-src 'none'; base-uri 'self'; form-action 'self' {return_origin}; "
        f"frame-ancestors 'self' {_frame_origins(platform)}"
    )
    return response


def _frame_origins(platform: LtiPlatform) -> str:
    found = [origin_of(u) for u in (platform.issuer, platform.auth_login_url)]
    found += [origin_of(u) for u in platform.frame_origins.split()]
    return " ".join(dict.fromkeys(o for o in found if o))


# -- grades the gradebook did not take ----------------------------------------------------------


@blueprint.post("/lti/notes/<int:learner_id>/renvoyer", endpoint="resend")
@frameable
def resend(learner_id: int) -> Response:
    """ "Renvoyer", from the campaign page: for members of the campaign's organization only."""
    session = get_session()
    user = connectors.current_user()
    row = session.execute(
        select(LtiLearner, connectors.Campaign)
        .join(LtiResourceLink, LtiResourceLink.id == LtiLearner.resource_link_id)
        .join(connectors.Campaign, connectors.Campaign.id == LtiResourceLink.campaign_id)
        .where(LtiLearner.id == learner_id)
    ).one_or_none()
    if (
        row is None
        or user is None
        or not connectors.is_member(session, user, row[1].organization_id)
    ):
        abort(404)
    queued = grades.resend(session, learner_id)
    session.commit()
    flash(
        _("La note est renvoyée à la plateforme.")
        if queued
        else _("Cette note ne peut plus être envoyée : l’activité n’accepte plus de notes."),
        "info" if queued else "error",
    )
    return redirect(url_for("orga_campaign.activity", campaign_id=row[1].id), 303)


# -- dynamic registration -------------------------------------------------------------------------

REGISTRATIONS = Limit("lti-register:address", max_hits=20, window=dt.timedelta(hours=1))
REGISTRATION_REFUSALS: dict[str, tuple[int, Any]] = {
    "bad_link": (
        404,
        _l(
            "Ce lien d’enregistrement n’est pas valide : demandez-en un à l’administrateur de Parcours."
        ),
    ),
    "link_expired": (
        410,
        _l(
            "Ce lien d’enregistrement a expiré : demandez-en un nouveau à l’administrateur de Parcours."
        ),
    ),
    "bad_request": (
        400,
        _l("La plateforme n’a pas transmis sa configuration (openid_configuration)."),
    ),
    "platform_down": (502, _l("La plateforme ne répond pas. Réessayez l’enregistrement.")),
    "platform_error": (
        502,
        _l(
            "La configuration de la plateforme ne convient pas à un outil LTI 1.3 : l’enregistrement est annulé."
        ),
    ),
    "already_registered": (
        409,
        _l("Cette plateforme a déjà enregistré Parcours avec cet identifiant client."),
    ),
    "too_many": (429, _l("Trop de tentatives d’enregistrement. Réessayez dans une heure.")),
}


@blueprint.get("/lti/register", endpoint="register")
@frameable
def register() -> tuple[str, int] | str:
    session = get_session()
    settings = _settings()
    try:
        verdict = ratelimit.hit(
            session, REGISTRATIONS, request.remote_addr or "-", secret=settings.secret_key
        )
        session.commit()
        if not verdict.allowed:
            raise registration.RegistrationRefused("too_many", "rate limited")
        organization = registration.organization_of(
            session, settings.secret_key, request.args.get("o", "")
        )
        configuration_url = request.args.get("openid_configuration", "")
        if not configuration_url:
            raise registration.RegistrationRefused("bad_request", "no openid_configuration")
        platform = registration.register(
            session,
            _http(),
            organization=organization,
            openid_configuration=configuration_url,
            registration_token=request.args.get("registration_token") or None,
            public_url=settings.public_url,
        )
    except registration.RegistrationRefused as refused:
        session.rollback()
        status, message = REGISTRATION_REFUSALS[refused.reason]
        log.warning("LTI dynamic registration refused (%s): %s", refused.reason, refused)
        return (
            render_template(
                "lti/refused.html", message=message, status=status, reference=g.get("request_id")
            ),
            status,
        )
    _event(platform.id, LtiEventKind.REGISTERED, f"enregistrement dynamique, {organization.name}")
    session.commit()
    log.info("LTI platform %s registered itself, pending activation", platform.id)
    return render_template("lti/registered.html", platform=platform, organization=organization)


# -- keys and configuration -----------------------------------------------------------------------


@blueprint.get("/lti/jwks.json", endpoint="jwks")
def jwks() -> Response:
    session = get_session()
    body = keys.jwks(session)
    session.commit()  # the first key, created at first use
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.get("/lti/config.json", endpoint="config")
def config() -> Response:
    """What an LMS administrator pastes when registering Parcours by hand."""
    host = urlsplit(_settings().public_url).hostname or ""
    body = {
        "title": "Parcours",
        "description": _("Évaluer les compétences numériques des élèves (cadre PIX / DigComp)."),
        "target_link_uri": _public("/lti/launch"),
        "oidc_initiation_url": _public("/lti/login"),
        "redirect_uris": [_public("/lti/launch")],
        "public_jwk_url": _public("/lti/jwks.json"),
        "deep_linking_url": _public("/lti/launch"),
        "domain": host,
        "scopes": [
            "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
            "https://purl.imsglobal.org/spec/lti-ags/scope/score",
            "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
            "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
        ],
        "claims": ["iss", "sub", "name", "given_name", "family_name", "email"],
        "messages": [
            {"type": "LtiResourceLinkRequest", "target_link_uri": _public("/lti/launch")},
            {"type": "LtiDeepLinkingRequest", "target_link_uri": _public("/lti/launch")},
        ],
        "custom_parameters": {"campaign_code": _("(facultatif) le code d’un parcours")},
    }
    return jsonify(body)
