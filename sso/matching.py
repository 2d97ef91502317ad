"""The one-time match of a student arriving from an ENT with the school's learner list: the
student types their birth date, then the learners of the school born that day are compared by
name — accents, case and punctuation ignored; exact names first, then close ones (edit distance
at most a quarter of the name's length, first and last names each) — and exactly one candidate
is linked for good through the connector seam. No candidate or several: nothing is linked and
the student is told whom to ask (or goes on with an account of their own).

Until then no account exists: what the IdP vouched for waits in `saml_pending_matches`, the
browser holding only a random token. The names compared are the IdP's (signed), never typed; the
birth date is the one thing typed, and its guesses are limited per identity. When the one
candidate, matched by exact names, is already linked to an account whose identity at the same
IdP carried the same names and school and has been silent for a day, that is the same student
whose IDO changed (their school moved to another ENT): the account's identity is re-pointed to
the new IDO. When it is linked to an account the student made from the school's LMS (an LTI
identity matched the same way, no password, no identity at this IdP), that account takes this
identity too (`join_identity`): one user for both. A learner linked to any other account is not
given away, and the page answers as when nobody matches (it must not confirm a classmate's
birth date).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import connectors
from campaigns.connectors import ExternalIdentity, Learner, Organization, User
from config.db import utcnow
from sso.models import SamlIdentityProvider, SamlPendingMatch

PENDING_LIFETIME = dt.timedelta(minutes=20)
MOVED_AFTER = dt.timedelta(days=1)  # an old IDO silent that long may have been replaced


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hold(
    session: Session,
    idp: SamlIdentityProvider,
    organization: Organization,
    identity: ExternalIdentity,
    next_path: str | None,
) -> str:
    """Keep what the IdP vouched for while the student types their birth date; the token the
    browser keeps to come back to it."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        SamlPendingMatch(
            token_hash=_token_hash(token),
            idp_id=idp.id,
            organization_id=organization.id,
            identity=identity.as_json(),
            next_path=next_path,
            created_at=now,
            expires_at=now + PENDING_LIFETIME,
        )
    )
    session.flush()
    return token


def pending(session: Session, token: str) -> SamlPendingMatch | None:
    if not token or len(token) > 128:
        return None
    return session.scalar(
        select(SamlPendingMatch).where(
            SamlPendingMatch.token_hash == _token_hash(token),
            SamlPendingMatch.expires_at > utcnow(),
        )
    )


def identity_of(held: SamlPendingMatch) -> ExternalIdentity:
    return ExternalIdentity.from_json(held.identity)


def learner_of(session: Session, organization: Organization, user: User) -> Learner | None:
    return session.scalar(
        select(Learner).where(
            Learner.organization_id == organization.id,
            Learner.user_id == user.id,
            Learner.is_disabled.is_(False),
        )
    )


def match_and_sign_in(
    session: Session, held: SamlPendingMatch, organization: Organization, birthdate: dt.date
) -> connectors.MatchOutcome:
    """Match the held student with the learners born on `birthdate` (the seam's rules, with
    this IdP's moved-IDO rule); nothing kept when it fails."""
    identity = identity_of(held)
    return connectors.match_student(
        session,
        organization,
        identity,
        birthdate,
        moved=lambda owner, how: _moved(session, owner, identity, how),
    )


def _moved(session: Session, owner: User, identity: ExternalIdentity, how: str) -> bool:
    """Whether `identity` is `owner`'s identity at the same IdP under a new id (the school moved
    to another ENT): exact names, the names the IdP sent for the old id equal to the new ones,
    the same school, and the old id silent for `MOVED_AFTER` (a student signing in under both
    is two students)."""
    if how != "strict":
        return False
    old = connectors.recorded_identity(session, owner, identity.provider, identity.issuer)
    if old is None:
        return False
    said = old.attributes
    norm = connectors.normalize_name
    same_names = (norm(str(said.get("first_name", ""))), norm(str(said.get("last_name", "")))) == (
        norm(identity.first_name),
        norm(identity.last_name),
    )
    same_school = said.get("uai") == identity.attributes.get("uai")
    quiet = old.last_used_at is None or utcnow() - old.last_used_at >= MOVED_AFTER
    return same_names and same_school and quiet
