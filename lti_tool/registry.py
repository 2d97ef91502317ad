"""Registered platforms and deployments: adding, changing, finding them, and what pylti1p3 reads
of them (`DatabaseToolConf`).

A registration is (issuer, client id): one issuer may hold many (Canvas). A launch names its
deployment, which says the organization whose campaigns it reaches. Inactive platforms are kept
but launch nobody.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from pylti1p3.deployment import Deployment
from pylti1p3.registration import Registration
from pylti1p3.tool_config.abstract import ToolConfAbstract
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.connectors import AlreadyExists, InvalidInput, Organization, ServiceError
from lti_tool import keys
from lti_tool.models import LtiDeployment, LtiPlatform
from lti_tool.services import origin_of

FIELD_MAX = {"issuer": 512, "client_id": 255, "deployment_id": 255, "name": 255}
URL_FIELDS = ("auth_login_url", "auth_token_url", "key_set_url")


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: str, field: str) -> str:
    """An absolute https URL (http only on this machine, for development)."""
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput(f"{field}: not a URL", code=field) from None
    if len(url) > 1024 or origin_of(url) is None:
        raise InvalidInput(f"{field}: expected an absolute https URL", code=field)
    if parts.scheme != "https" and not _is_local(parts.hostname or ""):
        raise InvalidInput(f"{field}: expected https", code=field)
    return url


def _text(value: str, field: str, *, required: bool = True) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field} is required", code=field)
    if len(text) > FIELD_MAX[field]:
        raise InvalidInput(f"{field} is limited to {FIELD_MAX[field]} characters", code=field)
    return text


def _usable(organization: Organization) -> None:
    if organization.archived_at is not None:
        raise ServiceError("the organization is archived", code="archived")


def _frame_origins(value: str) -> str:
    origins = []
    for item in value.split():
        origin = origin_of(item)
        if origin is None:
            raise InvalidInput(f"frame origin {item!r} is not an http(s) origin", code="frame")
        origins.append(origin)
    return " ".join(dict.fromkeys(origins))


def platform_fields(
    *,
    issuer: str,
    client_id: str,
    auth_login_url: str,
    auth_token_url: str,
    key_set_url: str,
    audience: str | None = None,
    name: str = "",
    frame_origins: str = "",
    match_learners: bool = False,
) -> dict[str, Any]:
    """The platform's fields as stored, checked (`code` of an error: the field at fault)."""
    fields: dict[str, Any] = {
        "issuer": _text(issuer, "issuer"),
        "client_id": _text(client_id, "client_id"),
        "name": _text(name, "name", required=False),
        "audience": (audience or "").strip()[:1024] or None,
        "frame_origins": _frame_origins(frame_origins),
        "match_learners": bool(match_learners),
    }
    for field, value in zip(URL_FIELDS, (auth_login_url, auth_token_url, key_set_url), strict=True):
        fields[field] = check_url(value, field)
    if "://" not in fields["issuer"]:
        raise InvalidInput("issuer: expected the platform's URL", code="issuer")
    return fields


def add_platform(
    session: Session,
    *,
    organization: Organization,
    deployment_id: str,
    active: bool = True,
    **fields: Any,
) -> LtiPlatform:
    """Register a platform and its first deployment, mapped to `organization`."""
    _usable(organization)
    values = platform_fields(**fields)
    deployment = _text(deployment_id, "deployment_id")
    platform = LtiPlatform(**values, is_active=active)
    try:
        with session.begin_nested():
            session.add(platform)
            session.flush()
    except IntegrityError:
        raise AlreadyExists(
            f"a platform with issuer {values['issuer']!r} and client id"
            f" {values['client_id']!r} is already registered",
            code="duplicate_platform",
        ) from None
    add_deployment(session, platform, deployment, organization)
    return platform


def update_platform(session: Session, platform: LtiPlatform, **fields: Any) -> dict[str, list[Any]]:
    """Change a platform's fields; what changed, as {field: [before, after]}."""
    values = platform_fields(**fields)
    changes = {
        key: [getattr(platform, key), value]
        for key, value in values.items()
        if getattr(platform, key) != value
    }
    if not changes:
        return {}
    try:
        with session.begin_nested():
            for key, (_, value) in changes.items():
                setattr(platform, key, value)
            if "key_set_url" in changes:
                platform.jwks, platform.jwks_fetched_at = None, None
            session.flush()
    except IntegrityError:
        session.refresh(platform)
        raise AlreadyExists(
            "another platform has this issuer and client id", code="duplicate_platform"
        ) from None
    return changes


def add_deployment(
    session: Session, platform: LtiPlatform, deployment_id: str, organization: Organization
) -> LtiDeployment:
    _usable(organization)
    deployment = LtiDeployment(
        platform_id=platform.id,
        deployment_id=_text(deployment_id, "deployment_id"),
        organization_id=organization.id,
    )
    try:
        with session.begin_nested():
            session.add(deployment)
            session.flush()
    except IntegrityError:
        raise AlreadyExists(
            f"deployment {deployment_id!r} is already registered for this platform",
            code="duplicate_deployment",
        ) from None
    session.refresh(platform)
    return deployment


# Built once: every login and launch runs them.
_PLATFORM = select(LtiPlatform).where(LtiPlatform.issuer == bindparam("issuer"))
_LOGIN_PLATFORM = select(
    LtiPlatform.id, LtiPlatform.client_id, LtiPlatform.auth_login_url, LtiPlatform.is_active
).where(LtiPlatform.issuer == bindparam("issuer"))
_DEPLOYMENT = (
    select(LtiDeployment, Organization)
    .join(Organization, Organization.id == LtiDeployment.organization_id)
    .where(
        LtiDeployment.platform_id == bindparam("platform_id"),
        LtiDeployment.deployment_id == bindparam("deployment_id"),
    )
)


_PLATFORM_OF_CLIENT = _PLATFORM.where(LtiPlatform.client_id == bindparam("client_id"))
_LOGIN_PLATFORM_OF_CLIENT = _LOGIN_PLATFORM.where(LtiPlatform.client_id == bindparam("client_id"))


def find_platform(session: Session, issuer: str, client_id: str | None) -> LtiPlatform | None:
    """The registration of (issuer, client id); without a client id (a login request may omit
    it), the issuer's only registration, or None when it has several."""
    found = _one_registration(session, (_PLATFORM, _PLATFORM_OF_CLIENT), issuer, client_id)
    return found[0] if found is not None else None


def find_login_platform(session: Session, issuer: str, client_id: str | None) -> Any:
    """`find_platform` as a login needs it: a row of its id, client id, authorization endpoint
    and whether it is active (no object: a login reads nothing else)."""
    return _one_registration(
        session, (_LOGIN_PLATFORM, _LOGIN_PLATFORM_OF_CLIENT), issuer, client_id
    )


def _one_registration(
    session: Session, queries: tuple[Any, Any], issuer: str, client_id: str | None
) -> Any:
    by_issuer, by_client = queries
    if client_id:
        return session.execute(by_client, {"issuer": issuer, "client_id": client_id}).one_or_none()
    found = session.execute(by_issuer.limit(2), {"issuer": issuer}).all()
    return found[0] if len(found) == 1 else None


_LAUNCH_REGISTRATION = (
    select(LtiPlatform, LtiDeployment, Organization)
    .outerjoin(
        LtiDeployment,
        (LtiDeployment.platform_id == LtiPlatform.id)
        & (LtiDeployment.deployment_id == bindparam("deployment_id")),
    )
    .outerjoin(Organization, Organization.id == LtiDeployment.organization_id)
    .where(
        LtiPlatform.issuer == bindparam("issuer"), LtiPlatform.client_id == bindparam("client_id")
    )
)


def find_launch_registration(
    session: Session, issuer: str, client_id: str, deployment_id: str | None
) -> tuple[LtiPlatform, tuple[LtiDeployment, Organization] | None] | None:
    """A launch's platform registration with the deployment its token names and that
    deployment's organization, read in one query; None without the platform, (platform, None)
    when the deployment is unknown."""
    row = session.execute(
        _LAUNCH_REGISTRATION,
        {"issuer": issuer, "client_id": client_id, "deployment_id": deployment_id},
    ).one_or_none()
    if row is None:
        return None
    platform, deployment, organization = row
    return platform, (deployment, organization) if deployment is not None else None


def find_deployment(
    session: Session, platform: LtiPlatform, deployment_id: str
) -> tuple[LtiDeployment, Organization] | None:
    """The deployment and its organization, read in one query (a launch needs both)."""
    row = session.execute(
        _DEPLOYMENT, {"platform_id": platform.id, "deployment_id": deployment_id}
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


class ToolRegistration(Registration):
    """A registration that names our signing key by its `kid` in the database."""

    kid: str | None = None

    def get_kid(self) -> str | None:
        return self.kid


def registration(session: Session, platform: LtiPlatform) -> ToolRegistration:
    """What pylti1p3 needs of a platform: its endpoints and our signing key."""
    key = keys.signing_key(session)
    found = ToolRegistration()
    (
        found.set_issuer(platform.issuer)
        .set_client_id(platform.client_id)
        .set_auth_login_url(platform.auth_login_url)
        .set_auth_token_url(platform.auth_token_url)
        .set_key_set_url(platform.key_set_url)
        .set_tool_private_key(key.private_key_pem)
    )
    if platform.audience:
        found.set_auth_audience(platform.audience)
    if platform.jwks:
        found.set_key_set(platform.jwks)  # type: ignore[arg-type]
    found.kid = key.kid
    return found


class DatabaseToolConf(ToolConfAbstract):  # type: ignore[type-arg]
    """pylti1p3's view of our registrations: always "one issuer, many client ids"."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> Registration:
        raise NotImplementedError("registrations are found by issuer and client id")

    def find_registration_by_params(  # type: ignore[override]
        self, iss: str, client_id: str, *args: Any, **kwargs: Any
    ) -> Registration | None:
        platform = find_platform(self.session, iss, client_id)
        if platform is None or not platform.is_active:
            return None
        return registration(self.session, platform)

    def find_deployment(self, iss: str, deployment_id: str) -> Deployment | None:
        raise NotImplementedError("deployments are found by issuer, client id and id")

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> Deployment | None:
        platform = find_platform(self.session, iss, client_id)
        if platform is None or find_deployment(self.session, platform, deployment_id) is None:
            return None
        return Deployment().set_deployment_id(deployment_id)

    def get_jwks(self, iss: str | None = None, client_id: str | None = None, **kwargs: Any) -> Any:
        return keys.jwks(self.session)
