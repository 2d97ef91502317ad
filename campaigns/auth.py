"""Who is signed in: the user id lives in the signed session cookie, the user in the database."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import g, redirect, request, session, url_for

from campaigns.models import User
from config.db import get_session, utcnow

F = TypeVar("F", bound=Callable[..., Any])


def current_user() -> User | None:
    """The signed-in user, unless their sessions were revoked since (password changed)."""
    if "current_user" not in g:
        user_id, signed_in_at = session.get("user_id"), session.get("signed_in_at")
        user = get_session().get(User, user_id) if isinstance(user_id, int) else None
        revoked_before = user.sessions_valid_after if user is not None else None
        if revoked_before is not None and (
            not isinstance(signed_in_at, float) or signed_in_at < revoked_before.timestamp()
        ):
            user = None
        g.current_user = user
    user_or_none: User | None = g.current_user
    return user_or_none


def sign_in(user: User) -> None:
    """Start a fresh session for `user` (nothing from the anonymous session survives)."""
    lang = session.get("lang")
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["signed_in_at"] = utcnow().timestamp()
    if lang:
        session["lang"] = lang
    g.current_user = user


def sign_out() -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    g.current_user = None


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("campaigns.sign_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def safe_next(target: str | None, default: str) -> str:
    """Follow `next` only to a path on this site (no scheme, no host, no protocol-relative URL)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target
