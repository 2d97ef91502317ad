"""Security headers, framing rules and CSRF protection.

Every response forbids framing, except views marked `@frameable`: those are meant to be shown
inside an LMS iframe and may be framed by the origins of the registered platforms (and by us).
Framing is ruled by CSP `frame-ancestors`, which lists origins; `X-Frame-Options` cannot, so it
is only sent where framing is refused outright.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, request
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session

from config.db import get_session

F = TypeVar("F", bound=Callable[..., Any])
FrameOriginsSource = Callable[[Session], Iterable[str]]

csrf = CSRFProtect()

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
