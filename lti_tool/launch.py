"""OIDC login and message launch: every check of the LTI Security Framework, on pylti1p3's
`MessageLaunch` with its gaps closed here.

Closed gaps: the state and nonce are ours, stored in the database and used once (pylti1p3 would
accept the same id_token and state twice); `aud` must hold our client id and `azp`, required with
several audiences, must be it; ~60 s of clock leeway; the platform's keys are cached in the
database and fetched again on an unknown `kid`; every HTTP call times out; a launch without
`sub` is told apart (an anonymous launch gets its own explanation).

Platform storage (1EdTech's client-side OIDC): when a platform names an `lti_storage_target` at
login, the login page also puts the state and nonce in that frame of the platform by
postMessage. A launch whose browser dropped our state cookie (third-party cookies blocked) is
then not taken at once: `StorageCheck` has a page read them back from the platform's storage in
this browser and post the launch again only if they are there — the binding the cookie gives.

A refused launch raises `LaunchRefused`, whose `reason` picks the page shown and the log line.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn
from urllib.parse import urlencode

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from pylti1p3.exception import LtiException
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.request import Request
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from campaigns.connectors import Organization
from config.db import table_of, utcnow
from lti_tool import registry
from lti_tool.http import PlatformUnreachable, platform_key
from lti_tool.models import LtiDeployment, LtiLoginState, LtiPlatform

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
LEEWAY = 60  # seconds of clock difference tolerated between the platform and us
STATE_LIFETIME = dt.timedelta(minutes=10)
STATE_COOKIE = "lti_state_"  # + the first characters of the state's hash
STORAGE_TARGET = re.compile(r"_parent|[A-Za-z0-9_.-]{1,64}")  # a frame name, as platforms give
STORAGE_CHECKED = "lti_storage_checked"  # the launch form's field once the storage check passed


class LoginState(NamedTuple):
    """What a launch needs of the login it follows."""

    nonce: str
    platform_id: int


class StorageCheck(Exception):  # a step of the launch, not an error
    """The launch's browser dropped our state cookie but the login put its state and nonce in the
    platform's storage: a page must read them back there before the launch goes on."""

    def __init__(self, *, target: str, nonce: str, platform_id: int) -> None:
        super().__init__(f"check the platform storage {target!r}")
        self.target = target
        self.nonce = nonce
        self.platform_id = platform_id


class LaunchRefused(Exception):
    """`reason`: what the page says (see views.REFUSALS); `detail`: for the log, never shown."""

    def __init__(self, reason: str, detail: str = "", *, platform_id: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.platform_id = platform_id


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def state_cookie_name(state: str) -> str:
    return STATE_COOKIE + state_hash(state)[:16]


# -- OIDC login (third-party initiated) -------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    """Where to send the browser: the platform's authorization endpoint, with our state."""

    redirect_url: str
    state: str
    nonce: str
    auth_login_url: str  # the platform's authorization endpoint
    storage_target: str | None  # the platform's storage frame, when it offered one


def start_login(
    session: Session, params: Mapping[str, str], *, launch_url: str, own_origin: str
) -> Login:
    """Check a login initiation and store its state and nonce (used once, within minutes)."""
    issuer = (params.get("iss") or "").strip()
    login_hint = params.get("login_hint") or ""
    target = (params.get("target_link_uri") or "").strip()
    if not issuer or not login_hint or not target:
        raise LaunchRefused("bad_login", "iss, login_hint and target_link_uri are required")
    client_id = (params.get("client_id") or "").strip()
    platform = registry.find_login_platform(session, issuer, client_id)
    if platform is None:
        raise LaunchRefused("unknown_platform", f"no registration for issuer {issuer!r}")
    if not platform.is_active:
        raise LaunchRefused("inactive_platform", "registration inactive", platform_id=platform.id)
    if not target.startswith(own_origin + "/"):
        raise LaunchRefused(
            "bad_login", f"target_link_uri {target[:200]!r} is not ours", platform_id=platform.id
        )
    storage_target = (params.get("lti_storage_target") or "").strip()
    if not STORAGE_TARGET.fullmatch(storage_target):
        storage_target = ""  # absent, or not a frame name: the cookie alone binds the launch
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(
        _NEW_STATE,
        {
            "state_hash": state_hash(state),
            "nonce": nonce,
            "platform_id": platform.id,
            "created_at": now,
            "expires_at": now + STATE_LIFETIME,
            "storage_target": storage_target or None,
        },
    )
    query = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": platform.client_id,
        "redirect_uri": launch_url,
        "state": state,
        "nonce": nonce,
        "login_hint": login_hint,
    }
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    separator = "&" if "?" in platform.auth_login_url else "?"
    return Login(
        platform.auth_login_url + separator + urlencode(query),
        state,
        nonce,
        platform.auth_login_url,
        storage_target or None,
    )


# -- launch ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _public_key(jwk_json: str) -> RSAPublicKey:
    """A platform's JWK as a key object, loaded once per process and key (a class launching
    together is verified against the same few keys)."""
    key = serialization.load_pem_public_key(JWK.from_json(jwk_json).export_to_pem())
    if not isinstance(key, RSAPublicKey):
        raise ValueError("not an RSA key")
    return key


_states = table_of(LtiLoginState)
_CLAIM = (
    update(_states)
    .where(
        _states.c.state_hash == bindparam("hash"),
        _states.c.used_at.is_(None),
        _states.c.expires_at > bindparam("now"),
    )
    .values(used_at=bindparam("now"))
    .returning(_states.c.nonce, _states.c.platform_id)
)
_CLAIM_BARE = _CLAIM.where(_states.c.storage_target.is_(None))
_NEW_STATE = insert(_states).values(
    {
        name: bindparam(name, type_=_states.c[name].type)
        for name in ("state_hash", "nonce", "platform_id", "created_at", "expires_at")
    }
    | {"storage_target": bindparam("storage_target", type_=_states.c.storage_target.type)}
)


class _FormRequest(Request):
    def __init__(self, form: Mapping[str, str]) -> None:
        self.form = form

    def get_param(self, key: str) -> str:
        return self.form.get(key, "")

    def get_cookie(self, key: str) -> str | None:  # pragma: no cover - unused: state is ours
        return None

    @property
    def session(self) -> None:  # pragma: no cover - unused
        return None

    def is_secure(self) -> bool:  # pragma: no cover - unused
        return True


class _Unused:
    """pylti1p3 wants session and cookie services; the state and nonce checks are ours."""

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - never called
        raise AssertionError(f"pylti1p3 reached its own {name}")


class ToolLaunch(MessageLaunch):  # type: ignore[type-arg]
    """One launch, validated against the database (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        form: Mapping[str, str],
        http: requests.Session,
        *,
        state_cookie: str | None,
        storage_checked: bool = False,
    ) -> None:
        super().__init__(
            _FormRequest(form),
            registry.DatabaseToolConf(session),
            session_service=_Unused(),
            cookie_service=_Unused(),
            requests_session=http,
        )
        self.session = session
        self.state_cookie = state_cookie
        self.storage_checked = storage_checked
        self.login_state: LoginState | None = None
        self.platform: LtiPlatform | None = None
        self.deployment: LtiDeployment | None = None
        self.organization: Organization | None = None
        self._deployment_found: tuple[LtiDeployment, Organization] | None = None

    def _get_request_param(self, key: str) -> str:
        value = self._request.get_param(key)
        return value if isinstance(value, str) else ""

    # The steps, in pylti1p3's order: state, format, nonce, registration, signature,
    # deployment, message.

    def validate_state(self) -> ToolLaunch:
        state = self._get_request_param("state")
        if not state or len(state) > 128:
            raise LaunchRefused("no_state", "missing state")
        now = utcnow()
        hashed = state_hash(state)
        # Read and used in one statement: single use. Without the cookie, a state the login
        # also put in the platform's storage waits for the storage check.
        claim = _CLAIM if self.state_cookie is not None or self.storage_checked else _CLAIM_BARE
        claimed = self.session.execute(claim, {"hash": hashed, "now": now}).one_or_none()
        if claimed is None:
            self._refuse_state(hashed, now)
        else:
            self.login_state = LoginState(claimed.nonce, claimed.platform_id)
        if self.state_cookie is not None and not secrets.compare_digest(self.state_cookie, state):
            raise LaunchRefused(
                "no_state", "state cookie mismatch", platform_id=self._platform_id()
            )
        return self

    def _refuse_state(self, hashed: str, now: dt.datetime) -> NoReturn:
        """Why a state could not be used: unknown, expired, used already — or waiting for the
        platform storage check."""
        row = self.session.execute(
            select(
                LtiLoginState.expires_at,
                LtiLoginState.platform_id,
                LtiLoginState.used_at,
                LtiLoginState.storage_target,
                LtiLoginState.nonce,
            ).where(LtiLoginState.state_hash == hashed)
        ).one_or_none()
        if row is None:
            raise LaunchRefused("no_state", "unknown state")
        if row.expires_at <= now:
            raise LaunchRefused("expired", "state expired", platform_id=row.platform_id)
        if row.used_at is None and row.storage_target is not None:
            raise StorageCheck(
                target=row.storage_target, nonce=row.nonce, platform_id=row.platform_id
            )
        raise LaunchRefused("replayed", "state already used", platform_id=row.platform_id)

    def validate_jwt_format(self) -> ToolLaunch:
        try:
            super().validate_jwt_format()
        except LtiException as error:
            raise LaunchRefused("bad_token", str(error), platform_id=self._platform_id()) from None
        if not isinstance(self._jwt.get("body"), dict) or not isinstance(
            self._jwt.get("header"), dict
        ):
            raise LaunchRefused("bad_token", "not a JWT object", platform_id=self._platform_id())
        return self

    def validate_nonce(self) -> ToolLaunch:
        assert self.login_state is not None  # noqa: S101 - validate_state ran
        nonce = self._get_jwt_body().get("nonce")
        if not isinstance(nonce, str) or not secrets.compare_digest(nonce, self.login_state.nonce):
            raise LaunchRefused("bad_nonce", "nonce differs", platform_id=self._platform_id())
        return self

    def validate_registration(self) -> ToolLaunch:
        body = self._get_jwt_body()
        issuer = body.get("iss")
        client_id = self._client_id(body)
        deployment_id = body.get(LTI + "deployment_id")
        found = (
            registry.find_launch_registration(
                self.session,
                issuer,
                client_id,
                deployment_id if isinstance(deployment_id, str) else None,
            )
            if isinstance(issuer, str) and client_id
            else None
        )
        platform, self._deployment_found = found if found is not None else (None, None)
        assert self.login_state is not None  # noqa: S101
        if platform is None or platform.id != self.login_state.platform_id:
            raise LaunchRefused(
                "bad_token", "iss or aud differs from the login", platform_id=self._platform_id()
            )
        if not platform.is_active:
            raise LaunchRefused("inactive_platform", "inactive", platform_id=platform.id)
        self.platform = platform  # pylti1p3's Registration is not needed: the checks below are ours
        return self

    def _client_id(self, body: Mapping[str, Any]) -> str | None:
        """Our client id as the token names it: `aud` (a string or a list) and `azp`."""
        aud = body.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        azp = body.get("azp")
        if len(audiences) > 1 and not azp:
            raise LaunchRefused("bad_token", "azp required", platform_id=self._platform_id())
        if azp is not None and azp not in audiences:
            raise LaunchRefused("bad_token", "azp not in aud", platform_id=self._platform_id())
        client_id = azp or (audiences[0] if audiences else None)
        return client_id if isinstance(client_id, str) else None

    def validate_jwt_signature(self) -> ToolLaunch:
        assert self.platform is not None  # noqa: S101
        header = self._jwt["header"]
        kid, alg = header.get("kid"), header.get("alg")
        if not isinstance(kid, str) or not kid:
            raise LaunchRefused("bad_signature", "no kid", platform_id=self.platform.id)
        if alg != "RS256":
            raise LaunchRefused("bad_signature", f"alg {alg!r}", platform_id=self.platform.id)
        try:
            jwk = platform_key(self.session, self._requests_session, self.platform, kid)
        except PlatformUnreachable as error:
            raise LaunchRefused("platform_down", str(error), platform_id=self.platform.id) from None
        if jwk is None:
            raise LaunchRefused(
                "bad_signature", f"unknown kid {kid!r}", platform_id=self.platform.id
            )
        try:
            public_key = _public_key(json.dumps(jwk, sort_keys=True))
            jwt.decode(
                self._get_id_token(),
                public_key,
                algorithms=["RS256"],
                audience=self.platform.client_id,
                issuer=self.platform.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "nonce"]},
            )
        except (jwt.InvalidTokenError, JWException, ValueError, TypeError) as error:
            raise LaunchRefused(
                "bad_signature", f"{type(error).__name__}: {error}", platform_id=self.platform.id
            ) from None
        iat = self._get_jwt_body().get("iat")
        if isinstance(iat, int | float) and iat > utcnow().timestamp() + LEEWAY:
            raise LaunchRefused("bad_signature", "iat in the future", platform_id=self.platform.id)
        return self

    def validate_deployment(self) -> ToolLaunch:
        deployment_id = self._get_jwt_body().get(LTI + "deployment_id")
        if not isinstance(deployment_id, str) or not deployment_id:
            raise LaunchRefused("bad_message", "no deployment_id", platform_id=self._platform_id())
        assert self.platform is not None  # noqa: S101
        found = self._deployment_found  # read with the platform (the same token's claim)
        if found is None:
            raise LaunchRefused(
                "unknown_deployment", f"deployment {deployment_id!r}", platform_id=self.platform.id
            )
        self.deployment, self.organization = found
        return self

    def validate_message(self) -> ToolLaunch:
        body = self._get_jwt_body()
        if not body.get("sub"):
            raise LaunchRefused("anonymous", "no sub", platform_id=self._platform_id())
        try:
            super().validate_message()
        except LtiException as error:
            raise LaunchRefused(
                "bad_message", str(error), platform_id=self._platform_id()
            ) from None
        return self

    def save_launch_data(self) -> ToolLaunch:
        return self  # what we keep of a launch is in our own tables

    def _platform_id(self) -> int | None:
        if self.platform is not None:
            return self.platform.id
        return self.login_state.platform_id if self.login_state is not None else None

    def validate(self) -> ToolLaunch:
        try:
            super().validate()
        except LaunchRefused:
            raise
        except LtiException as error:
            raise LaunchRefused(
                "bad_message", str(error), platform_id=self._platform_id()
            ) from None
        return self

    @property
    def claims(self) -> dict[str, Any]:
        return dict(self._get_jwt_body())
