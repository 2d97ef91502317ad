"""Who is signed in: the signed session cookie holds a random session token, the database holds
the session (`campaigns.accounts.sessions`). Signing out revokes it for good, in every process; a session
ends `sessions.SESSION_LIFETIME` after sign-in, whatever the activity.

A session opened with a temporary password reaches nothing but the password-change form (and
signing out) until a new password is chosen: `enforce_password_change` runs before every view.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, g, redirect, request, session, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaigns.accounts import sessions
from campaigns.shared.models import User, UserSession
from campaigns.shared.organizations import organizations_of
from config.db import get_session, retry_if_disconnected
from config.ratelimit import Limit, hit

F = TypeVar("F", bound=Callable[..., Any])
SESSION_KEY = "sid"
# What a session that must change its password may still reach.
PASSWORD_CHANGE_ALLOWS = frozenset(
    {"campaigns.change_password", "campaigns.sign_out", "static", "core.healthz"}
)
# What a visitor set out to do before signing in ("Je commence" on a campaign's page): kept
# across sign-in and sign-up, with the language, and nothing else.
PENDING_KEY = "pending"
PENDING_LIFETIME = 900  # seconds
KEPT_ACROSS_SIGN_IN = ("lang", PENDING_KEY)


# Pages that read who is signed in together with what they show, in one statement (the answer
# path): endpoint -> loader(session, token) giving the signed-in session, or None for nobody.
Found = sessions.SignedIn | sessions.ReadSignedIn
Loader = Callable[[Session, str], Found | None]
_LOADERS: dict[str, Loader] = {}


def load_signed_in_with(endpoint: str, loader: Loader) -> None:
    """Let `loader` read the signed-in session of requests to `endpoint` (it must refuse what
    `sessions.signed_in` refuses: unknown, revoked and expired sessions)."""
    _LOADERS[endpoint] = loader


def _signed_in() -> Found | None:
    if "signed_in" not in g:
        token = session.get(SESSION_KEY)
        if isinstance(token, str) and 0 < len(token) <= sessions.TOKEN_MAX_LENGTH:
            loader = _LOADERS.get(request.endpoint or "", sessions.signed_in)
            # Usually the request's first statement: it finds a connection the database dropped.
            g.signed_in = retry_if_disconnected(lambda: loader(get_session(), token))
        else:
            g.signed_in = None
    found: Found | None = g.signed_in
    return found


def is_signed_in() -> bool:
    """Whether a live session signs this request in (without making its user object)."""
    return _signed_in() is not None


def current_user() -> User | None:
    """The signed-in user, while their session lives (not signed out, revoked or expired)."""
    found = _signed_in()
    return found.user if found is not None else None


def current_person() -> sessions.Person | User | None:
    """The signed-in user for what every page shows of them (the header, the language): their
    `User`, or, on the pages that read the session with their own statement, a `Person` made
    from that statement's row (no ORM object: the answer path's pages make none)."""
    found = _signed_in()
    if found is None:
        return None
    return found.person if isinstance(found, sessions.ReadSignedIn) else found.user


def current_session() -> UserSession | None:
    found = _signed_in()
    return found.session if found is not None else None


def sign_in(user: User, *, password_change_required: bool = False, then: str | None = None) -> None:
    """Start a fresh session for `user` (nothing from the previous cookie survives but the
    language, and the action this browser set out to do when `then`, the page the sign-in leads
    to, is the page that carries it out: see `remember_pending`). The caller commits."""
    db = get_session()
    previous = session.get(SESSION_KEY)
    if isinstance(previous, str):
        sessions.end_session(db, previous)
    token, row = sessions.open_session(db, user, password_change_required=password_change_required)
    kept = _kept()
    pending = kept.get(PENDING_KEY)
    if not (
        isinstance(pending, list) and len(pending) == 3 and then is not None and pending[1] == then
    ):
        kept.pop(PENDING_KEY, None)  # someone else's errand, on a shared computer
    session.clear()
    session.permanent = True
    session[SESSION_KEY] = token
    session.update(kept)
    g.signed_in = sessions.SignedIn(user, row)
    g.opened_session = True


def undo_sign_in() -> None:
    """After the caller rolled back the transaction of a `sign_in` of this request (a refused
    launch): that session was never stored, so the cookie stops naming it and nobody is
    signed in."""
    if not g.pop("opened_session", False):
        return
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    g.signed_in = None


def anonymous_like_signed_in() -> None:
    """A fresh cookie shaped like a new session's (a random session id that names no session):
    for answers that must not tell a signed-in visitor from an anonymous one by their cookie
    (sign-up with an address that has an account)."""
    kept = _kept()
    session.clear()
    session.permanent = True
    session[SESSION_KEY] = sessions.new_token()
    session.update(kept)
    g.signed_in = None


def _kept() -> dict[str, Any]:
    return {key: session[key] for key in KEPT_ACROSS_SIGN_IN if session.get(key)}


def remember_pending(action: str, page: str) -> None:
    """Remember that this browser set out to do `action` (asked for by a POST that the CSRF
    token covers) and was sent to sign in or sign up first: `page` carries it out afterwards
    (`take_pending`). It survives only a sign-in that leads to `page`; signing out forgets it,
    so do 15 minutes."""
    session[PENDING_KEY] = [action, page, int(time.time())]


def take_pending(action: str) -> bool:
    """Whether this browser set out to do `action` in the last 15 minutes (then forgotten)."""
    found = session.get(PENDING_KEY)
    if not (isinstance(found, list) and len(found) == 3 and found[0] == action):
        return False
    session.pop(PENDING_KEY)
    return isinstance(found[2], int) and 0 <= time.time() - found[2] <= PENDING_LIFETIME


def sign_out() -> None:
    """End the session in the database and clear the cookie. The caller commits."""
    token = session.get(SESSION_KEY)
    if isinstance(token, str):
        sessions.end_session(get_session(), token)
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    g.signed_in = None


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not is_signed_in():
            return redirect(url_for("campaigns.sign_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def enforce_password_change() -> Response | None:
    """Before every view: a session signed in with a temporary password is sent to the
    password-change form, whatever it asks for."""
    if SESSION_KEY not in session or request.endpoint in PASSWORD_CHANGE_ALLOWS:
        return None
    found = _signed_in()
    if found is None or not found.password_change_required:
        return None
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("campaigns.change_password", next=safe_next(target, "/")), 303)


def init_auth(app: Flask) -> None:
    app.before_request(enforce_password_change)


def over_limit(limit: Limit, key: str) -> bool:
    """Count one attempt of this request (committed at once, so parallel requests see it);
    True when `key` is now over `limit`."""
    db = get_session()
    verdict = hit(db, limit, key, secret=current_app.config["SECRET_KEY"])
    db.commit()
    return not verdict.allowed


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


def home_of(user: User) -> str:
    """Where a signed-in person goes when they asked for no page: a member of an organization
    (a teacher) to the panel, a district administrator to `/admin`, anyone else (a student) to
    their campaigns."""
    if organizations_of(get_session(), user):
        return url_for("orga.home")
    # Loaded with the user (`User.is_instance_admin`); `/admin` also asks for a proven address.
    if user.email_proven and user.is_instance_admin:  # type: ignore[attr-defined]
        return url_for("admin.home")
    return url_for("journey.my_campaigns")
