"""A learner's first launch from a platform whose names the district administrator declared
reliable (`LtiPlatform.match_learners`) is matched once with the school's learner list, as the
ENT's students are: the student types their birth date, the names compared are the id_token's
(signed by the platform), and exactly one learner must fit (`connectors.match_student`).

- The learner is nobody's yet: the launch's new account is linked to it for good.
- It is already the account of the same student arriving from the ENT (exact names): that
  account takes this LTI identity too (`connectors.join_identity`), so knowledge, results and
  grades follow the student whichever way they come.
- It is anyone else's: nothing is given away, and the page answers as when nobody matches (it
  must not confirm a classmate's birth date).

Until then no account exists: the launch waits in `lti_pending_matches`, the browser holding
only a random token in the page's address (the LMS frame may drop our cookies: the token, bound
to this launch and short-lived, is also what protects the form from cross-site posts). Guesses
are limited per identity. A student not on the list goes on with an account of their own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from campaigns import connectors
from campaigns.connectors import ExternalIdentity, Organization
from config.db import execute_dml, utcnow
from lti_tool.models import LtiPendingMatch, LtiPlatform, LtiResourceLink

PENDING_LIFETIME = dt.timedelta(minutes=20)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def must_match(
    session: Session,
    platform: LtiPlatform,
    organization: Organization,
    identity: ExternalIdentity,
) -> bool:
    """Whether this learner launch waits for a birth date: the platform matches learners, the
    identity never launched before, and the school has a learner list."""
    return (
        platform.match_learners
        and connectors.find_external_user(session, identity) is None
        and connectors.has_learners(session, organization)
    )


def hold(
    session: Session,
    platform: LtiPlatform,
    organization: Organization,
    link: LtiResourceLink,
    campaign: connectors.Campaign,
    identity: ExternalIdentity,
    *,
    cookies: bool,
) -> tuple[str, str | None]:
    """Keep the checked launch while the student types their birth date: the token their page
    carries to come back to it, and when the browser keeps our cookies, the value of the cookie
    that binds the page to this browser (a token sent to someone else, or read from the history
    of another browser, is then worth nothing)."""
    token = secrets.token_urlsafe(32)
    browser = secrets.token_urlsafe(16) if cookies else None
    now = utcnow()
    session.add(
        LtiPendingMatch(
            token_hash=_token_hash(token),
            platform_id=platform.id,
            organization_id=organization.id,
            resource_link_id=link.id,
            campaign_id=campaign.id,
            identity=identity.as_json(),
            cookies=cookies,
            browser_hash=_token_hash(browser) if browser else None,
            created_at=now,
            expires_at=now + PENDING_LIFETIME,
        )
    )
    session.flush()
    return token, browser


def same_browser(held: LtiPendingMatch, cookie: str | None) -> bool:
    """Whether this request comes from the browser the launch was held for (always, when that
    browser kept none of our cookies)."""
    if held.browser_hash is None:
        return True
    return bool(cookie) and secrets.compare_digest(_token_hash(str(cookie)), held.browser_hash)


def pending(session: Session, token: str) -> LtiPendingMatch | None:
    if not token or len(token) > 128:
        return None
    return session.scalar(
        select(LtiPendingMatch).where(
            LtiPendingMatch.token_hash == _token_hash(token),
            LtiPendingMatch.expires_at > utcnow(),
        )
    )


def claim(session: Session, held: LtiPendingMatch) -> bool:
    """Use the held launch once: False when a parallel request of the same page already did."""
    return bool(
        execute_dml(session, delete(LtiPendingMatch).where(LtiPendingMatch.id == held.id)).rowcount
    )


def identity_of(held: LtiPendingMatch) -> ExternalIdentity:
    return ExternalIdentity.from_json(held.identity)


def match(
    session: Session, held: LtiPendingMatch, organization: Organization, birthdate: dt.date
) -> connectors.MatchOutcome:
    """Match the held learner with the school's learners born on `birthdate` (the seam's
    rules; nothing kept when it fails)."""
    return connectors.match_student(session, organization, identity_of(held), birthdate)


def purge_expired(session: Session, now: dt.datetime | None = None) -> int:
    """Forget the launches nobody finished matching (their names included)."""
    return int(
        execute_dml(
            session,
            delete(LtiPendingMatch).where(LtiPendingMatch.expires_at <= (now or utcnow())),
        ).rowcount
    )
