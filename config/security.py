"""Security headers, framing rules, CSRF protection and the signed session cookie.

Every response forbids framing, except views marked `@frameable`: those are meant to be shown
inside an LMS iframe and may be framed by the origins of the registered platforms (and by us).
Framing is ruled by CSP `frame-ancestors`, which lists origins; `X-Frame-Options` cannot, so it
is only sent where framing is refused outright.

Every page opens the signed session cookie (base64, HMAC, JSON) and signs a CSRF token for its
forms, and every form checks one. Flask and Flask-WTF build their signing objects anew each
time; here they are built once per set of keys. A student sends the same cookie on every page
of a test: what checking an exact cookie string gave is remembered (a bounded number per set of
keys, `COOKIES_REMEMBERED`), its age still checked on every request. Only a string this process
verified with the current keys is remembered, and only one in its canonical form (base64 decoding
skips stray characters: padded copies of a valid cookie would otherwise each take a place); a
forged or altered cookie is checked in full every time. CSRF tokens are signed and checked as
Flask-WTF does (a new timestamp every second: a page never shows the same token for long), with
the signing object built once. Anything unusual (a mutable value in the session, CSRF settings
other than ours) takes Flask's and Flask-WTF's own path.
"""

from __future__ import annotations

import functools
import hmac
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import Flask, Request, Response, abort, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect, generate_csrf, same_origin
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from config.db import get_session

F = TypeVar("F", bound=Callable[..., Any])
FrameOriginsSource = Callable[[Session], Iterable[str]]

COOKIES_REMEMBERED = 4096  # per worker: a few hundred bytes each, 4 MiB at the very most
CSRF_FIELD = "csrf_token"  # Flask-WTF's default, in the session and in forms
CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's
# A cookie as itsdangerous writes it: [.]payload.timestamp.signature, URL-safe base64 only.
_CANONICAL_COOKIE = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_COOKIE_REMEMBERED_MAX_LENGTH = 1024
_IMMUTABLE = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class _Signing:
    """The session cookie's serializer for one set of keys, and the cookies it verified."""

    keys: tuple[Any, ...]
    serializer: URLSafeTimedSerializer
    opened: Callable[[str], tuple[tuple[tuple[str, Any], ...] | None, int]]


class RememberingSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, its serializer built once per set of keys and the check
    of a cookie string remembered while the session holds only immutable values (a remembered
    dict or list would be shared by the requests that mutate it). New keys (a rotation) start
    with nothing remembered."""

    def _signing(self, app: Flask) -> _Signing | None:
        if not app.secret_key:
            return None
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        signing: _Signing | None = app.extensions.get("parcours.session_signing")
        if signing is None or signing.keys != keys:
            serializer = super().get_signing_serializer(app)
            if serializer is None:
                return None
            opened = functools.lru_cache(maxsize=COOKIES_REMEMBERED)(
                functools.partial(_opened_cookie, serializer)
            )
            signing = _Signing(keys, serializer, opened)
            app.extensions["parcours.session_signing"] = signing
        return signing

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        signing = self._signing(app)
        return signing.serializer if signing is not None else None

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        signing = self._signing(app)
        if signing is None:
            return None
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return self.session_class()
        if len(value) > _COOKIE_REMEMBERED_MAX_LENGTH or not _CANONICAL_COOKIE.fullmatch(value):
            return super().open_session(app, request)  # checked in full, never remembered
        try:
            items, signed_at = signing.opened(value)
        except BadData:
            return self.session_class()
        age = _now() - signed_at  # as itsdangerous measures it
        if not 0 <= age <= int(app.permanent_session_lifetime.total_seconds()):
            return self.session_class()  # expired (or from a clock ahead of ours)
        if items is None:  # a value that must not be shared: read afresh
            return super().open_session(app, request)
        return self.session_class(dict(items))


def _now() -> int:
    return int(time.time())


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
    """Flask-WTF's protection, its signing object built once per key. Tokens are Flask-WTF's
    own (same salt, same format, a new timestamp every second); exemptions and errors are
    Flask-WTF's."""

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        app.jinja_env.globals["csrf_token"] = csrf_token
        app.context_processor(lambda: {"csrf_token": csrf_token})  # over Flask-WTF's

    def protect(self, apply_exemptions: bool = False) -> None:
        if apply_exemptions and (not request.endpoint or self._is_exempt()):
            return
        if not self._token_matches():
            super().protect()  # refuses, with Flask-WTF's own message
            return
        if request.is_secure and current_app.config["WTF_CSRF_SSL_STRICT"]:
            referrer = request.referrer
            if not referrer or not same_origin(referrer, f"https://{request.host}/"):
                super().protect()  # refuses
                return
        g.csrf_valid = True

    def _token_matches(self) -> bool:
        """Whether the request's token is a signed form of the session's raw token (False
        also when a check is not ours to make: Flask-WTF then decides)."""
        if not _our_csrf_settings() or request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return False
        raw = session.get(CSRF_FIELD)
        token = self._get_csrf_token()
        if not isinstance(raw, str) or not token:
            return False
        try:
            signed_raw = _csrf_serializer(current_app).loads(token)
        except BadData:
            return False
        return isinstance(signed_raw, str) and hmac.compare_digest(raw, signed_raw)


def csrf_token() -> str:
    """The page's CSRF token (templates' `csrf_token()`): Flask-WTF's `generate_csrf`, with
    the signing object built once."""
    token = g.get(CSRF_FIELD)
    if token is not None:
        return str(token)
    raw = session.get(CSRF_FIELD)
    if not isinstance(raw, str) or not _our_csrf_settings():
        return str(generate_csrf())  # makes the raw token, or follows other settings
    token = str(_csrf_serializer(current_app).dumps(raw))
    setattr(g, CSRF_FIELD, token)
    return token


def _our_csrf_settings() -> bool:
    """Tokens without a time limit, signed with the app's key, in the default field."""
    config = current_app.config
    return (
        bool(current_app.secret_key)
        and config["WTF_CSRF_TIME_LIMIT"] is None
        and not config.get("WTF_CSRF_SECRET_KEY")
        and config["WTF_CSRF_FIELD_NAME"] == CSRF_FIELD
    )


def _csrf_serializer(app: Flask) -> URLSafeTimedSerializer:
    built: tuple[Any, URLSafeTimedSerializer] | None = app.extensions.get("parcours.csrf_signing")
    if built is None or built[0] != app.secret_key:
        key = cast(str | bytes, app.secret_key)  # there is one: `_our_csrf_settings`
        built = (key, URLSafeTimedSerializer(key, salt=CSRF_SALT))
        app.extensions["parcours.csrf_signing"] = built
    return built[1]


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


_FIXED_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ("Cross-Origin-Opener-Policy", "same-origin-allow-popups"),
)


def _set_security_headers(response: Response) -> Response:
    """Each header unless the view set its own (one pass over the response's headers: Werkzeug's
    `setdefault` looks for the name three times)."""
    ancestors = _frame_ancestors()
    wanted = [("Content-Security-Policy", f"{_BASE_CSP}; frame-ancestors {ancestors}")]
    if ancestors == "'none'":
        wanted.append(("X-Frame-Options", "DENY"))
    wanted.extend(_FIXED_HEADERS)
    if current_app.config["PARCOURS_SETTINGS"].https:
        wanted.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    if request.endpoint not in ("static",):
        wanted.append(("Cache-Control", "no-store"))
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)
    return response
