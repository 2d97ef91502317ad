"""Users who arrive from an LMS (LTI) or an identity provider (SAML, GAR): one account per
external identity (provider, issuer, external id), created at its first sign-in.

Rules:
- an external identity is never joined to an existing account because an e-mail matches: its
  first sign-in creates a new account, whatever the address says. It joins an account only
  through a school's learner list (`join_identity`: the same student from the ENT and the LMS);
- two first sign-ins at once make one account: the unique constraint on the identity decides,
  the loser withdraws the account it had just inserted and reads the winner's;
- each sign-in refreshes the attributes the connector read, and the names unless the account
  shows names other than those last read (changed in Parcours). The e-mail is taken on the
  account only when the identity provider vouches for it, the address is free and the account
  has no password login (whose owner chose their own address to sign in with); "mot de passe
  oublié" never adds a first password to an account without one (`links`);
- external ids are personal data: logs carry `identity_ref`, a hash, never the id itself.

Functions take the session first, flush and never commit.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.accounts.users import has_password, normalize_email
from campaigns.shared.errors import AlreadyExists, InvalidInput
from campaigns.shared.models import (
    NAME_MAX_LENGTH,
    AuthenticationMethod,
    AuthenticationProvider,
    Learner,
    Membership,
    User,
)
from campaigns.shared.names import normalize_name
from config.db import insert_row, table_of, upsert, utcnow
from config.i18n import DEFAULT_LOCALE

log = logging.getLogger(__name__)

IDENTIFIER_MAX_LENGTH = 512  # the issuer and external id columns


@dataclass(frozen=True)
class ExternalIdentity:
    """Who the connector says the user is, and what else it read about them."""

    provider: AuthenticationProvider
    issuer: str  # LTI platform issuer, SAML identity provider slug
    external_id: str  # LTI `sub`, SAML NameID or GAR IDO
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    # True only when the connector's configuration names this issuer as authoritative for
    # addresses (a GAR federation's academic addresses); never for an LMS, which passes on
    # whatever its users typed. A vouched address becomes the account's, proven.
    email_verified: bool = False
    attributes: Mapping[str, Any] = field(default_factory=dict)  # roles, classes, UAI… as read

    def as_json(self) -> dict[str, Any]:
        """What a connector keeps of the identity while the student answers a question (a
        JSON column), `from_json` reading it back."""
        return asdict(self) | {"provider": self.provider.value, "attributes": dict(self.attributes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExternalIdentity:
        return cls(**{**data, "provider": AuthenticationProvider(data["provider"])})


_identity_key: bytes | None = None


def set_identity_key(secret: str) -> None:
    """Key `identity_ref` with the instance's secret (the app factory and `parcours worker` do):
    a guessable id (an e-mail-like eduPersonPrincipalName) cannot then be confirmed from the
    logs by hashing candidates."""
    global _identity_key
    _identity_key = hashlib.sha256(b"parcours identity ref\0" + secret.encode()).digest()


def identity_ref(issuer: str, external_id: str) -> str:
    """What logs, events and the audit log say instead of an external id: stable for one
    instance, not reversible, and not checkable without the instance's secret."""
    message = f"{issuer}\0{external_id}".encode()
    if _identity_key is None:  # only before any app or worker set it up (scripts)
        return hashlib.sha256(message).hexdigest()[:16]
    return hmac.new(_identity_key, message, hashlib.sha256).hexdigest()[:16]


def _checked(identity: ExternalIdentity) -> ExternalIdentity:
    if identity.provider is AuthenticationProvider.PASSWORD:
        raise InvalidInput("a password is not an external identity", code="provider")
    issuer, external_id = identity.issuer.strip(), identity.external_id.strip()
    if not issuer or not external_id:
        raise InvalidInput("an external identity needs an issuer and an id", code="identity")
    if len(issuer) > IDENTIFIER_MAX_LENGTH or len(external_id) > IDENTIFIER_MAX_LENGTH:
        raise InvalidInput("the external identity is too long", code="identity")
    return replace(identity, issuer=issuer, external_id=external_id)


def _clean_name(value: str) -> str:
    return " ".join(value.split())[:NAME_MAX_LENGTH]


def _attributes(identity: ExternalIdentity) -> dict[str, Any]:
    read = dict(identity.attributes)
    read.update(first_name=identity.first_name, last_name=identity.last_name)
    if identity.email:
        read["email"] = identity.email
    return read


# Built once: a first launch or sign-in runs these (plain Core where no object is needed).
_methods = table_of(AuthenticationMethod)
_FIND = (
    select(User, AuthenticationMethod)
    .join(AuthenticationMethod, AuthenticationMethod.user_id == User.id)
    .where(
        AuthenticationMethod.provider == bindparam("provider"),
        AuthenticationMethod.issuer == bindparam("issuer"),
        AuthenticationMethod.external_id == bindparam("external_id"),
    )
)
_METHOD_COLUMNS = ("user_id", "provider", "issuer", "external_id", "attributes", "last_used_at")


@functools.cache
def _new_method(dialect: str) -> Any:
    """The identity's row, unless another first sign-in inserted it meanwhile (no row back)."""
    return (
        upsert(dialect, _methods)
        .values(
            {name: bindparam(name, type_=_methods.c[name].type) for name in _METHOD_COLUMNS}
            | {"created_at": bindparam("now"), "must_change_password": False}
        )
        .on_conflict_do_nothing()
        .returning(_methods.c.id)
    )


def _find(session: Session, identity: ExternalIdentity) -> tuple[User, AuthenticationMethod] | None:
    row = session.execute(
        _FIND,
        {
            "provider": identity.provider,
            "issuer": identity.issuer,
            "external_id": identity.external_id,
        },
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


def _create(session: Session, identity: ExternalIdentity) -> User | None:
    """The identity's new account, or None when a concurrent first sign-in of the same identity
    made one first (the account inserted here is withdrawn: the caller reads theirs)."""
    now = utcnow()
    names = {
        "first_name": _clean_name(identity.first_name),
        "last_name": _clean_name(identity.last_name),
        "locale": DEFAULT_LOCALE,
    }
    user = insert_row(
        session,
        User,
        names | {"email": None, "last_signed_in_at": now, "created_at": now, "updated_at": now},
    )
    method_id = session.execute(
        _new_method(session.get_bind().dialect.name),
        {
            "user_id": user.id,
            "provider": identity.provider,
            "issuer": identity.issuer,
            "external_id": identity.external_id,
            "attributes": _attributes(identity),
            "last_used_at": now,
            "now": now,
        },
    ).scalar()
    if method_id is None:
        session.delete(user)
        session.flush()
        return None
    return user


def _refresh_names(user: User, method: AuthenticationMethod, identity: ExternalIdentity) -> None:
    """Follow the names the provider sends, as long as the account still shows the ones it
    sent last time (a name changed in Parcours stays as its owner wrote it)."""
    before = method.attributes or {}
    for field_name in ("first_name", "last_name"):
        new = _clean_name(getattr(identity, field_name))
        current = getattr(user, field_name)
        if new and new != current and current in ("", _clean_name(before.get(field_name, ""))):
            setattr(user, field_name, new)


def _adopt_email(session: Session, user: User, identity: ExternalIdentity) -> None:
    """Take the address the identity provider vouches for, when nobody else uses it and the
    account has no password login."""
    if not identity.email or not identity.email_verified:
        return
    try:
        address = normalize_email(identity.email)
    except InvalidInput:
        return  # kept as read in the attributes, never on the account
    if user.email == address:
        return
    if has_password(session, user):
        return  # its owner signs in with their own address: never replaced from outside
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        return  # someone else's account: never merged, never taken
    try:
        with session.begin_nested():
            user.email, user.email_verified_at = address, utcnow()
            session.flush()
    except IntegrityError:  # taken meanwhile
        session.refresh(user)


def sign_in_external(session: Session, identity: ExternalIdentity) -> User:
    """The account of `identity`, created at its first sign-in, its names and attributes
    refreshed. The connector then signs the user in (`auth.sign_in`) and commits."""
    identity = _checked(identity)
    ref = identity_ref(identity.issuer, identity.external_id)
    found = _find(session, identity)
    user = _create(session, identity) if found is None else None
    created = user is not None
    if found is None and user is None:  # a concurrent first sign-in created it: read theirs
        found = _find(session, identity)
        if found is None:
            raise AlreadyExists("the identity's account is being created", code="identity")
    if found is not None:
        user, method = found
        _refresh_names(user, method, identity)
        method.attributes = _attributes(identity)
        method.last_used_at = user.last_signed_in_at = utcnow()
    assert user is not None  # noqa: S101 - created or found
    _adopt_email(session, user, identity)
    session.flush()
    log.info(
        "%s sign-in: user %s, identity %s (%s)",
        identity.provider.value,
        user.id,
        ref,
        "created" if created else "known",
    )
    return user


def join_identity(
    session: Session, owner: User, identity: ExternalIdentity, learner: Learner
) -> User | None:
    """Give `owner`'s account the identity `identity` too (the same student arriving from the
    ENT and from the school's LMS), then sign in as `sign_in_external` would. The connector
    decides when: the school's `learner`, held by `owner`, matched `identity`'s vouched names
    with the birth date the student typed.

    Only a student's account that a connector made and matched exactly joins: refused (None)
    when `identity` already has an account; when its names, or the names any identity of the
    account last carried, are not exactly the learner's (a close-name match is no proof that
    two identities are one student); when the account signs in with a password (its owner's own
    login) or has no external identity (an invited one); when it belongs to staff (a member of
    an organization, an instance administrator); or when it holds an identity at this provider
    and issuer already (a second account of one ENT or LMS is a second student, or a moved
    IDO: `repoint_identity`)."""
    identity = _checked(identity)
    if learner.user_id != owner.id or _find(session, identity) is not None:
        return None
    names = (normalize_name(learner.first_name), normalize_name(learner.last_name))
    if (normalize_name(identity.first_name), normalize_name(identity.last_name)) != names:
        return None
    held = session.execute(
        select(
            AuthenticationMethod.provider,
            AuthenticationMethod.issuer,
            AuthenticationMethod.attributes,
        ).where(AuthenticationMethod.user_id == owner.id)
    ).all()
    if not held or any(provider is AuthenticationProvider.PASSWORD for provider, _, _ in held):
        return None
    if any((p, i) == (identity.provider, identity.issuer) for p, i, _ in held):
        return None
    for _, _, attributes in held:
        said = attributes or {}
        if (
            normalize_name(str(said.get("first_name", ""))),
            normalize_name(str(said.get("last_name", ""))),
        ) != names:
            return None
    staff = session.scalar(select(Membership.id).where(Membership.user_id == owner.id).limit(1))
    if staff is not None or owner.is_instance_admin:  # type: ignore[attr-defined]
        return None
    try:
        with session.begin_nested():
            session.add(
                AuthenticationMethod(
                    user_id=owner.id,
                    provider=identity.provider,
                    issuer=identity.issuer,
                    external_id=identity.external_id,
                    attributes=_attributes(identity),
                    last_used_at=utcnow(),
                )
            )
    except IntegrityError:  # the identity signed in meanwhile, with an account of its own
        return None
    log.info(
        "%s identity %s joined to user %s (the same learner of a school)",
        identity.provider.value,
        identity_ref(identity.issuer, identity.external_id),
        owner.id,
    )
    return sign_in_external(session, identity)


def find_external_user(session: Session, identity: ExternalIdentity) -> User | None:
    """The account of `identity` if it signed in before (nothing is created or refreshed)."""
    found = _find(session, _checked(identity))
    return found[0] if found is not None else None


def repoint_identity(session: Session, user: User, identity: ExternalIdentity) -> User:
    """Move `user`'s identity of the same provider and issuer to `identity`'s new external id
    (a GAR student whose IDO changed when their school moved to another ENT), then sign in as
    `sign_in_external` would. The connector decides when (the federation vouched for the names
    and the school's learner list matched them); refused with `InvalidInput` when `user` has no
    identity of that issuer, and with `AlreadyExists` when the new id already has an account."""
    identity = _checked(identity)
    if _find(session, identity) is not None:
        raise AlreadyExists("this identity already has an account", code="identity")
    method = session.scalars(
        select(AuthenticationMethod).where(
            AuthenticationMethod.user_id == user.id,
            AuthenticationMethod.provider == identity.provider,
            AuthenticationMethod.issuer == identity.issuer,
        )
    ).first()
    if method is None:
        raise InvalidInput("the account has no identity of this issuer", code="identity")
    old_ref = identity_ref(identity.issuer, method.external_id or "")
    method.external_id = identity.external_id
    session.flush()
    log.info(
        "%s identity of user %s re-pointed: %s -> %s",
        identity.provider.value,
        user.id,
        old_ref,
        identity_ref(identity.issuer, identity.external_id),
    )
    return sign_in_external(session, identity)


@dataclass(frozen=True)
class RecordedIdentity:
    """What Parcours last read of an account's identity at a provider and issuer."""

    external_id: str
    attributes: Mapping[str, Any]
    last_used_at: dt.datetime | None


def recorded_identity(
    session: Session, user: User, provider: AuthenticationProvider, issuer: str
) -> RecordedIdentity | None:
    method = session.scalars(
        select(AuthenticationMethod).where(
            AuthenticationMethod.user_id == user.id,
            AuthenticationMethod.provider == provider,
            AuthenticationMethod.issuer == issuer,
        )
    ).first()
    if method is None:
        return None
    return RecordedIdentity(
        method.external_id or "", dict(method.attributes or {}), method.last_used_at
    )
