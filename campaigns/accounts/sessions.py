"""Signed-in sessions kept in the database. A browser is signed in by a `UserSession` row: the
cookie holds a random token of which only the SHA-256 is stored. Signing out revokes the row; a
password change or reset revokes every row of the user (the browser that changed it goes on
under a new one). Sessions end `SESSION_LIFETIME` after sign-in whatever the activity."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from campaigns.shared.models import AccountToken, PersonTraits, User, UserSession
from config.db import execute_dml, insert_row, loaded, utcnow

SESSION_LIFETIME = dt.timedelta(hours=12)
TOKEN_BYTES = 32
TOKEN_MAX_LENGTH = 128  # a longer cookie value names no session


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    user: User
    session: UserSession

    @property
    def password_change_required(self) -> bool:
        return self.session.password_change_required


@dataclass(frozen=True)
class Person(PersonTraits):
    """The signed-in user as the page header and the choice of language see them (a `User`
    answers the same): read with the page's own statement, no ORM object made."""

    id: int
    first_name: str
    last_name: str
    email: str | None
    email_verified_at: dt.datetime | None
    locale: str | None
    is_member: bool
    is_instance_admin: bool


class ReadSignedIn:
    """A signed-in session read with a page's own statement (plain Core): the user and session
    objects are made when first asked for (the pages of the answer path ask for neither: their
    header and language read `person`)."""

    def __init__(self, session: Session, user: dict[str, Any], row: dict[str, Any]) -> None:
        self._db, self._user, self._row = session, user, row
        self.user_id: int = user["id"]
        self.password_change_required: bool = row["password_change_required"]

    @functools.cached_property
    def person(self) -> Person:
        values = self._user
        return Person(**{name: values[name] for name in _PERSON_FIELDS})

    @functools.cached_property
    def user(self) -> User:
        return loaded(self._db, User, self._user)

    @functools.cached_property
    def session(self) -> UserSession:
        return loaded(self._db, UserSession, self._row)


_PERSON_FIELDS = tuple(Person.__dataclass_fields__)


def open_session(
    session: Session, user: User, *, password_change_required: bool = False
) -> tuple[str, UserSession]:
    """A new signed-in session for `user`: the token for the cookie, and its row."""
    token, now = new_token(), utcnow()
    row = insert_row(
        session,
        UserSession,
        {
            "user_id": user.id,
            "token_hash": token_hash(token),
            "created_at": now,
            "expires_at": now + SESSION_LIFETIME,
            "password_change_required": password_change_required,
        },
    )
    return token, row


def signed_in(session: Session, token: str) -> SignedIn | None:
    """The user of a live session token (one query), or None: unknown, revoked or expired."""
    if not token or len(token) > TOKEN_MAX_LENGTH:
        return None
    row = session.execute(
        select(User, UserSession)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.token_hash == token_hash(token),
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > utcnow(),
        )
    ).one_or_none()
    return SignedIn(row[0], row[1]) if row is not None else None


def end_session(session: Session, token: str) -> None:
    execute_dml(
        session,
        update(UserSession)
        .where(UserSession.token_hash == token_hash(token), UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False),
    )


def revoke_sessions(session: Session, user: User, *, keep: UserSession | None = None) -> int:
    """End every open session of `user` (but `keep`, the one making the change)."""
    statement = update(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
    )
    if keep is not None:
        statement = statement.where(UserSession.id != keep.id)
    return execute_dml(
        session,
        statement.values(revoked_at=utcnow()).execution_options(synchronize_session=False),
    ).rowcount


def purge_ended(session: Session, *, older_than: dt.timedelta = dt.timedelta(days=1)) -> int:
    """Forget sessions and mailed links that ended (expired, revoked or used) more than
    `older_than` ago (`parcours worker` runs this now and then)."""
    cutoff = utcnow() - older_than
    sessions = execute_dml(
        session,
        delete(UserSession).where(
            or_(UserSession.expires_at < cutoff, UserSession.revoked_at < cutoff)
        ),
    ).rowcount
    links = execute_dml(
        session,
        delete(AccountToken).where(
            or_(AccountToken.expires_at < cutoff, AccountToken.used_at < cutoff)
        ),
    ).rowcount
    return sessions + links
