"""Accounts you can trust: signed-in sessions kept in the database, proven e-mail addresses and
the single-use links mailed to prove them or to choose a new password.

Functions take the session first, flush and never commit. Rules:
- a browser is signed in by a `UserSession` row: the cookie holds a random token of which only
  the SHA-256 is stored. Signing out revokes the row; a password change or reset revokes every
  row of the user (the browser that changed it goes on under a new one). Sessions end `SESSION_LIFETIME` after sign-in whatever the activity;
- an e-mail address is proven only when a link mailed to it was used together with the
  account's password: `confirm_email` from the account's own session, `reset_password` (which
  replaces the password and ends every session), or an invitation accepted by the signed-in
  account of that address. Only a proven address receives a role, a learner link or an
  external identity link (`users.require_proven`);
- links are random tokens stored hashed, valid once, for a limited time, and only for the
  address they were sent to (an account whose address changed since cannot use them).
"""

from __future__ import annotations

import datetime as dt

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.accounts import users
from campaigns.accounts.sessions import new_token, revoke_sessions, token_hash
from campaigns.accounts.users import has_password
from campaigns.shared.errors import InvalidInput, ServiceError
from campaigns.shared.models import (
    AccountToken,
    AccountTokenPurpose,
    User,
)
from config.db import execute_dml, utcnow
from config.mail import queue_mail

VALIDITY = {
    AccountTokenPurpose.VERIFY_EMAIL: dt.timedelta(days=3),
    AccountTokenPurpose.RESET_PASSWORD: dt.timedelta(hours=1),
}


CONFIRM_PATH = "/mon-compte/confirmer/"


RESET_PATH = "/mot-de-passe-oublie/"


FORGOTTEN_PATH = "/mot-de-passe-oublie"


SIGN_IN_PATH = "/connexion"


class LinkUnusable(ServiceError):
    """A mailed link that cannot be used; `code`: unknown, expired, used or stale."""


def link(public_url: str, path: str) -> str:
    """A link for an e-mail: built on the configured public address, never on the request's
    Host header (which a client chooses)."""
    return f"{public_url.rstrip('/')}{path}"


def mark_proven(session: Session, user: User, address: str) -> None:
    """The owner of `address` just showed they read it (a link mailed to it was used)."""
    if user.email == address and user.email_verified_at is None:
        user.email_verified_at = utcnow()
        session.flush()


def _issue(session: Session, user: User, purpose: AccountTokenPurpose) -> str:
    """A new link for `user`'s current address; earlier unused links of the same kind stop
    working (only the newest e-mail's link is valid)."""
    if user.email is None:
        raise InvalidInput("this account has no e-mail address")
    now = utcnow()
    execute_dml(
        session,
        update(AccountToken)
        .where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(expires_at=now)
        .execution_options(synchronize_session=False),
    )
    token = new_token()
    row = AccountToken(
        user_id=user.id,
        purpose=purpose,
        email=user.email,
        token_hash=token_hash(token),
        created_at=now,
        expires_at=now + VALIDITY[purpose],
    )
    session.add(row)
    session.flush()
    return token


def find_link(
    session: Session, purpose: AccountTokenPurpose, token: str, *, lock: bool = False
) -> tuple[AccountToken, User]:
    """The usable link of this token and its user; `LinkUnusable` otherwise."""
    if not token or len(token) > 128:
        raise LinkUnusable("unknown link", code="unknown")
    query = (
        select(AccountToken, User)
        .join(User, User.id == AccountToken.user_id)
        .where(AccountToken.token_hash == token_hash(token), AccountToken.purpose == purpose)
    )
    if lock:
        query = query.with_for_update()
    row = session.execute(query).one_or_none()
    if row is None:
        raise LinkUnusable("unknown link", code="unknown")
    found, user = row
    if found.used_at is not None:
        raise LinkUnusable("the link was used", code="used")
    if found.expires_at <= utcnow():
        raise LinkUnusable("the link expired", code="expired")
    if user.email != found.email:
        raise LinkUnusable("the account's address changed since", code="stale")
    return found, user


def send_confirmation(session: Session, user: User, public_url: str) -> None:
    """Mail a "confirmez votre adresse" link to `user`'s address (a new one each time)."""
    if user.email is None or user.email_verified_at is not None:
        return
    token = _issue(session, user, AccountTokenPurpose.VERIFY_EMAIL)
    subject = _("Confirmez votre adresse e-mail sur Parcours")
    body = mail_body(
        _("Pour confirmer que cette adresse e-mail est bien la vôtre, ouvrez ce lien :")
        + "\n"
        + link(public_url, CONFIRM_PATH + token),
        _(
            "Tant que votre adresse n’est pas confirmée, vous pouvez passer des parcours, mais "
            "aucune organisation ne peut vous donner de rôle."
        ),
        _("Si vous n’avez pas créé de compte sur Parcours, ignorez simplement ce message."),
    )
    queue_mail(session, to=user.email, subject=subject, body=body, dedupe_key=f"verify:{user.id}")


def confirm_email(session: Session, token: str, signed_in: User) -> User:
    """Use a confirmation link, from the account's own session: the address it was sent to is
    proven (the link shows the mailbox is theirs, the session that the account is)."""
    found, user = find_link(session, AccountTokenPurpose.VERIFY_EMAIL, token, lock=True)
    if user.id != signed_in.id:
        raise LinkUnusable("the link is for another account", code="other_account")
    found.used_at = utcnow()
    mark_proven(session, user, found.email)
    return user


def send_already_registered(session: Session, user: User, public_url: str) -> None:
    """Someone signed up with the address of an existing account: tell its owner, not them."""
    if user.email is None:
        return
    subject = _("Vous avez déjà un compte sur Parcours")
    body = mail_body(
        _(
            "Quelqu’un (vous, sans doute) a voulu créer un compte sur Parcours avec cette "
            "adresse e-mail. Vous avez déjà un compte : connectez-vous avec cette adresse."
        )
        + "\n"
        + link(public_url, SIGN_IN_PATH),
        _("Si vous avez oublié votre mot de passe, choisissez-en un nouveau ici :")
        + "\n"
        + link(public_url, FORGOTTEN_PATH),
        _("Si ce n’était pas vous, ignorez ce message : votre compte n’a pas changé."),
    )
    queue_mail(session, to=user.email, subject=subject, body=body, dedupe_key=f"known:{user.id}")


def request_password_reset(session: Session, address: str, public_url: str) -> None:
    """Mail a "choisir un nouveau mot de passe" link to the account of `address`, if any (the
    caller answers the same way either way)."""
    user = session.scalars(select(User).where(User.email == address)).one_or_none()
    if user is None or user.email is None:
        return
    if not has_password(session, user):
        # An account that signs in through an LMS or an ENT: a first password mailed to an
        # address its identity provider asserted would give the account a second owner.
        return
    token = _issue(session, user, AccountTokenPurpose.RESET_PASSWORD)
    subject = _("Choisissez un nouveau mot de passe sur Parcours")
    body = mail_body(
        _("Pour choisir un nouveau mot de passe, ouvrez ce lien (valable une heure) :")
        + "\n"
        + link(public_url, RESET_PATH + token),
        _("Si vous n’avez rien demandé, ignorez ce message : votre mot de passe ne change pas."),
    )
    queue_mail(session, to=user.email, subject=subject, body=body, dedupe_key=f"reset:{user.id}")


def password_replaced(session: Session, user: User) -> None:
    """After a new password: every session of the account ends, and "mot de passe oublié"
    links sent before stop working."""
    revoke_sessions(session, user)
    execute_dml(
        session,
        update(AccountToken)
        .where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == AccountTokenPurpose.RESET_PASSWORD,
            AccountToken.used_at.is_(None),
        )
        .values(expires_at=utcnow())
        .execution_options(synchronize_session=False),
    )


def reset_password(session: Session, token: str, new_password: str) -> User:
    """Use a reset link: the new password replaces the old one (no change required), the
    address is proven, and every session of the account ends (someone else's included)."""
    found, user = find_link(session, AccountTokenPurpose.RESET_PASSWORD, token, lock=True)
    users.check_password_strength(new_password)
    users.set_password(session, user, new_password)
    found.used_at = utcnow()
    mark_proven(session, user, found.email)
    password_replaced(session, user)
    session.flush()
    return user


def mail_body(*paragraphs: str) -> str:
    """Greeting, paragraphs (a link on its own line), signature."""
    lines = [_("Bonjour,"), ""]
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    return "\n".join([*lines, "-- ", "Parcours"])
