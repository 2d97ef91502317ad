"""Security headers, framing rules, CSRF protection and the signed session cookie.

Every response forbids framing, except views marked `@frameable`: those are meant to be shown
inside an LMS iframe and may be framed by the origins of the registered platforms (and by us).
Framing is ruled by CSP `frame-ancestors`, which lists origins; `X-Frame-Options` cannot, so it
is only sent where framing is refused outright.

Signatures are checked once per process. Every page opens the signed session cookie (base64,
HMAC, JSON) and signs a CSRF token for its forms, and every form checks one; a student sends the
same cookie and gets the same raw token on every page of a test. What checking an exact cookie
string gave, and the signed form of an exact raw token, are remembered (a bounded number per
process: `SIGNATURES_REMEMBERED`), the cookie's age still checked on every request. Nothing less
is trusted: only a string that this process verified with the current keys is remembered, a
forged or altered one is checked in full every time, and anything unusual (a mutable value in
the session, a CSRF setting other than ours) takes Flask's and Flask-WTF's own path.
"""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, Request, Response, abort, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect, same_origin
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from config.db import get_session

F = TypeVar("F", bound=Callable[..., Any])
FrameOriginsSource = Callable[[Session], Iterable[str]]

SIGNATURES_REMEMBERED = 4096  # per kind and process: a few hundred bytes each
CSRF_FIELD = "csrf_token"  # Flask-WTF's default, in the session and in forms
_IMMUTABLE = (str, int, float, bool, type(None))


class RememberingSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, its serializer built once per set of keys and the check
    of a cookie string remembered while the session holds only immutable values (a remembered
    dict or list would be shared by the requests that mutate it)."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        built: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] | None = app.extensions.get(
            "parcours.session_serializer"
        )
        if built is None or built[0] != keys:
            built = (keys, super().get_signing_serializer(app))
            app.extensions["parcours.session_serializer"] = built
        return built[1]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return self.session_class()
        try:
            items, signed_at = _opened_cookie(serializer, value)
        except BadData:
            return self.session_class()
        age = int(time.time()) - signed_at  # as itsdangerous measures it
        if not 0 <= age <= int(app.permanent_session_lifetime.total_seconds()):
            return self.session_class()  # expired (or from a clock ahead of ours)
        if items is None:  # a value that must not be shared: read afresh
            return super().open_session(app, request)
        return self.session_class(dict(items))


@functools.lru_cache(maxsize=SIGNATURES_REMEMBERED)
def _opened_cookie(
    serializer: URLSafeTimedSerializer, value: str
) -> tuple[tuple[tuple[str, Any], ...] | None, int]:
    """The cookie's items (None when a value is mutable) and when it was signed; raises BadData
    (never remembered) for a cookie not signed with these keys."""
    data, signed_at = serializer.loads(value, return_timestamp=True)
    items = tuple(data.items()) if isinstance(data, dict) else None
    if items is not None and not all(isinstance(v, _IMMUTABLE) for _, v in items):
        items = None
    return items, int(signed_at.timestamp())


class RememberingCSRFProtect(CSRFProtect):  # type: ignore[misc]
    """Flask-WTF's protection, with its tokens' signatures remembered. The tokens are Flask-WTF's
    own (same salt, same format, no time limit here): a remembered one is the signed token of
    the same raw token, as valid as a new one. On any doubt the check is Flask-WTF's."""

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        app.jinja_env.globals["csrf_token"] = csrf_token
        app.context_processor(lambda: {"csrf_token": csrf_token})  # over Flask-WTF's

    def protect(self, apply_exemptions: bool = False) -> None:
        if not self._remembered_token_matches():
            super().protect(apply_exemptions=apply_exemptions)
            return
        config = current_app.config
        if request.is_secure and config["WTF_CSRF_SSL_STRICT"]:
            referrer = request.referrer
            if not referrer or not same_origin(referrer, f"https://{request.host}/"):
                super().protect(apply_exemptions=apply_exemptions)  # refuses
                return
        g.csrf_valid = True

    def _remembered_token_matches(self) -> bool:
        if not _our_csrf_settings() or request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return False
        raw = session.get(CSRF_FIELD)
        token = self._get_csrf_token()
        if not isinstance(raw, str) or not token:
            return False
        try:
            signed_raw = _opened_csrf_token(current_app.secret_key, token)
        except BadData:
            return False
        return isinstance(signed_raw, str) and hmac.compare_digest(raw, signed_raw)


def csrf_token() -> str:
    """The page's CSRF token (templates' `csrf_token()`), Flask-WTF's `generate_csrf` with the
    signature of a raw token made once per process."""
    token = g.get(CSRF_FIELD)
    if token is not None:
        return str(token)
    raw = session.get(CSRF_FIELD)
    if not isinstance(raw, str) or not _our_csrf_settings():
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())  # makes the raw token, or follows other settings
    token = _signed_csrf_token(current_app.secret_key, raw)
    setattr(g, CSRF_FIELD, token)
    return token


def _our_csrf_settings() -> bool:
    """Tokens without a time limit, signed with the app's key, in the default field: the only
    settings under which a token signed earlier is as good as a new one."""
    config = current_app.config
    return (
        config["WTF_CSRF_TIME_LIMIT"] is None
        and not config.get("WTF_CSRF_SECRET_KEY")
        and config["WTF_CSRF_FIELD_NAME"] == CSRF_FIELD
    )


@functools.lru_cache(maxsize=SIGNATURES_REMEMBERED)
def _signed_csrf_token(secret_key: str, raw: str) -> str:
    return str(URLSafeTimedSerializer(secret_key, salt="wtf-csrf-token").dumps(raw))


@functools.lru_cache(maxsize=SIGNATURES_REMEMBERED)
def _opened_csrf_token(secret_key: str, token: str) -> Any:
    """The raw token inside a signed one; raises BadData (never remembered) otherwise."""
    return URLSafeTimedSerializer(secret_key, salt="wtf-csrf-token").loads(token)


csrf = RememberingCSRFProtect()

# Registered origins are read at most this often per process (every framed page needs them): a
# newly registered LMS may frame pages after at most this delay, at once in the process that
# registered it (`forget_frame_origins`).
FRAME_ORIGINS_TTL = 30.0

_BASE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'"
)


def frameable(view: F) -> F:
    """Mark a view as meant to be shown inside a registered LMS's iframe."""
    view.parcours_frameable = True  # type: ignore[attr-defined]
    return view


def add_frame_origins_source(app: Flask, source: FrameOriginsSource) -> None:
    """Let a package (the LTI tool) say which origins may frame `@frameable` views."""
    app.extensions.setdefault("parcours.frame_origins", []).append(source)


def init_security(app: Flask) -> None:
    app.session_interface = RememberingSessionInterface()
    csrf.init_app(app)
    app.before_request(_refuse_nul_characters)
    app.after_request(_set_security_headers)


def _refuse_nul_characters() -> None:
    """No text of ours holds a NUL character (PostgreSQL cannot even store one): a path, query
    string or form carrying one is malformed (400), before any view compares it with a column."""
    fields = (*request.args.items(multi=True), *request.form.items(multi=True))
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in fields):
        abort(400)


def _is_frameable() -> bool:
    if request.endpoint is None:
        return False
    view = current_app.view_functions.get(request.endpoint)
    return bool(getattr(view, "parcours_frameable", False))


def forget_frame_origins(app: Flask) -> None:
    """Read the registered origins again on the next framed page (after a registration)."""
    app.extensions.pop("parcours.frame_ancestors", None)


def _frame_ancestors() -> str:
    if not _is_frameable():
        return "'none'"
    cached: tuple[float, str] | None = current_app.extensions.get("parcours.frame_ancestors")
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    origins: set[str] = set()
    for source in current_app.extensions.get("parcours.frame_origins", []):
        origins.update(source(get_session()))
    ancestors = " ".join(["'self'", *sorted(origins)])
    current_app.extensions["parcours.frame_ancestors"] = (now + FRAME_ORIGINS_TTL, ancestors)
    return ancestors


def _set_security_headers(response: Response) -> Response:
    ancestors = _frame_ancestors()
    headers = response.headers
    headers.setdefault("Content-Security-Policy", f"{_BASE_CSP}; frame-ancestors {ancestors}")
    if ancestors == "'none'":
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin-allow-popups")
    if current_app.config["PARCOURS_SETTINGS"].https:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.endpoint not in ("static",):
        headers.setdefault("Cache-Control", "no-store")
    return response
