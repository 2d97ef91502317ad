"""Users and their passwords: creating an account, checking and changing a password, the rule
that only a proven address receives a role or a link.

Functions take the session first, flush and never commit: callers own the transaction."""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.shared.errors import AlreadyExists, InvalidInput, ServiceError
from campaigns.shared.models import (
    NAME_MAX_LENGTH,
    AuthenticationMethod,
    AuthenticationProvider,
    Learner,
    User,
)
from config.db import utcnow

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


PASSWORD_MIN_LENGTH = 8


_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


# Verified when the login is unknown, so both cases take the same time.
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


class EmailNotProven(ServiceError):
    """The account's e-mail address is not proven: it may not receive a role or a link."""

    def __init__(self) -> None:
        super().__init__("the account's e-mail address is not confirmed", code="unproven")


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or len(email.split("@", 1)[0]) > 64 or not EMAIL_PATTERN.match(email):
        raise InvalidInput(f"invalid e-mail address: {raw.strip()!r}")
    return email


# The rules a password must follow, by name: what `password_faults` reports.
PASSWORD_RULES = {
    "length": "at least 8 characters",
    "upper": "an upper-case letter",
    "lower": "a lower-case letter",
    "digit": "a digit",
}


def password_faults(password: str) -> list[str]:
    """The rules of `PASSWORD_RULES` that `password` breaks, in their order (empty: strong
    enough), so that a page can say what is wrong rather than repeat every rule."""
    broken = {
        "length": len(password) < PASSWORD_MIN_LENGTH,
        "upper": not re.search(r"[A-Z]", password),
        "lower": not re.search(r"[a-z]", password),
        "digit": not re.search(r"\d", password),
    }
    return [rule for rule in PASSWORD_RULES if broken[rule]]


def check_password_strength(password: str) -> None:
    faults = password_faults(password)
    if faults:
        raise InvalidInput(
            "the password lacks " + ", ".join(PASSWORD_RULES[rule] for rule in faults),
            code="weak",
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def generate_password() -> str:
    """A random password that satisfies `check_password_strength`."""
    while True:
        candidate = secrets.token_urlsafe(12)
        try:
            check_password_strength(candidate)
        except InvalidInput:
            continue
        return candidate


def find_user_by_login(session: Session, login: str) -> User | None:
    login = login.strip().lower()
    if not login:
        return None
    return session.scalars(
        select(User).where(or_(User.email == login, User.username == login))
    ).first()


def set_password(
    session: Session, user: User, password: str, *, must_change: bool = False
) -> AuthenticationMethod:
    method = _password_method(session, user)
    if method is None:
        method = AuthenticationMethod(user_id=user.id, provider=AuthenticationProvider.PASSWORD)
        session.add(method)
    method.password_hash = hash_password(password)
    method.must_change_password = must_change
    session.flush()
    return method


def create_user(
    session: Session,
    *,
    first_name: str,
    last_name: str,
    email: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> User:
    first_name, last_name = first_name.strip(), last_name.strip()
    if not first_name or not last_name:
        raise InvalidInput("first name and last name are required")
    if password is not None:
        check_password_strength(password)
    if len(first_name) > NAME_MAX_LENGTH or len(last_name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"names are limited to {NAME_MAX_LENGTH} characters")
    user = User(
        first_name=first_name,
        last_name=last_name,
        email=normalize_email(email) if email else None,
        username=username.strip().lower() if username else None,
    )
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise AlreadyExists("an account already uses this e-mail address or username") from None
    if password is not None:
        set_password(session, user, password)
    return user


def require_proven(user: User) -> None:
    """Refuse a role, a learner link or an external identity link to an account whose e-mail
    address its owner has not proven (`links`): someone may have signed up with an address
    that is not theirs. Accounts without an e-mail (an identifiant the school made) have
    nothing to prove."""
    if user.email is not None and user.email_verified_at is None:
        raise EmailNotProven()


def link_learner(session: Session, learner: Learner, user: User) -> None:
    """Attach `user` to the school's `learner` (one user per learner, one learner per user in a
    school: the database refuses a second one)."""
    require_proven(user)
    learner.user_id = user.id
    session.flush()


def _password_method(session: Session, user: User) -> AuthenticationMethod | None:
    return session.scalars(
        select(AuthenticationMethod).where(
            AuthenticationMethod.user_id == user.id,
            AuthenticationMethod.provider == AuthenticationProvider.PASSWORD,
        )
    ).one_or_none()


def has_password(session: Session, user: User) -> bool:
    """Whether the account signs in with a password (its owner chose its e-mail to do so)."""
    return _password_method(session, user) is not None


def must_change_password(session: Session, user: User) -> bool:
    method = _password_method(session, user)
    return method is not None and method.must_change_password


def change_password(session: Session, user: User, *, current: str, new: str) -> None:
    """Replace the user's password after checking the current one (the caller ends the user's
    other sessions: `sessions.revoke_sessions`)."""
    method = _password_method(session, user)
    if method is None or method.password_hash is None:
        raise InvalidInput("this account has no password", code="wrong_current")
    try:
        _hasher.verify(method.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise InvalidInput("the current password is wrong", code="wrong_current") from None
    if new == current:
        raise InvalidInput("the new password equals the current one", code="unchanged")
    check_password_strength(new)
    set_password(session, user, new)


def authenticate(session: Session, login: str, password: str) -> User | None:
    """The user whose login and password match, or None (in the same time either way)."""
    user = find_user_by_login(session, login)
    method = _password_method(session, user) if user is not None else None
    stored = method.password_hash if method is not None and method.password_hash else None
    try:
        _hasher.verify(stored or _UNKNOWN_USER_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or method is None or stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        method.password_hash = hash_password(password)
    now = utcnow()
    method.last_used_at = now
    user.last_signed_in_at = now
    session.flush()
    return user
