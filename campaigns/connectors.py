"""What the connectors (`lti_tool`, `sso`) use of Parcours: the one module of `campaigns` they
import (an import-linter contract keeps it so). They write no account logic of their own.

A connector's sign-in request, once it has checked the launch or the assertion:

1. `sign_in_external(session, ExternalIdentity(...))`: the user of that identity, created at
   its first sign-in (never matched to an existing account by e-mail), names refreshed;
2. `start_session(user)`: the same signed-in session as a password sign-in, session id renewed;
3. for a teacher, `ensure_member(session, organization, user)` (MEMBER, never ADMIN by that
   alone); for a student the connector matched, `attach_learner(session, organization,
   learner_id, user)`, refused with `LearnerTaken` when the learner is someone else's;
4. `enter_campaign(session, user, code)`: started or resumed as "Je commence" would, with the
   page to land on (`Entry.url`: rules, question, results…);
5. commit.

`subscribe(Event.SHARED, listener)` (from the app factory) runs `listener(session,
participation)` in the transaction of every share; a failing listener undoes the share.
Logs name external identities by `identity_ref`, never by their id.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from campaigns.accounts.auth import current_user
from campaigns.accounts.auth import sign_in as start_session
from campaigns.accounts.external import ExternalIdentity, identity_ref, sign_in_external
from campaigns.accounts.users import EmailNotProven
from campaigns.journey import services as journey
from campaigns.journey.services import NextPage, NotAllowed, NotFound
from campaigns.journey.views import page_url
from campaigns.orga.learners import AlreadyLinked, LearnerTaken, attach_learner
from campaigns.orga.team import ensure_member
from campaigns.shared.codes import normalize_code
from campaigns.shared.errors import InvalidInput, ServiceError
from campaigns.shared.events import Event, ListenerFailed, subscribe, unsubscribe
from campaigns.shared.models import (
    AuthenticationProvider,
    Campaign,
    Learner,
    MembershipRole,
    Organization,
    Participation,
    User,
)

__all__ = [
    "AlreadyLinked",
    "AuthenticationProvider",
    "Campaign",
    "EmailNotProven",
    "Entry",
    "Event",
    "ExternalIdentity",
    "InvalidInput",
    "Learner",
    "LearnerTaken",
    "ListenerFailed",
    "MembershipRole",
    "NextPage",
    "NotAllowed",
    "NotFound",
    "Organization",
    "Participation",
    "ServiceError",
    "User",
    "attach_learner",
    "current_user",
    "ensure_member",
    "enter_campaign",
    "identity_ref",
    "sign_in_external",
    "start_session",
    "subscribe",
    "unsubscribe",
]


@dataclass(frozen=True)
class Entry:
    """Where a user who entered a campaign lands."""

    campaign: Campaign
    participation: Participation | None  # None: the campaign first asks for an identifier
    page: NextPage

    @property
    def url(self) -> str:
        return page_url(self.campaign.code, self.page)


def enter_campaign(session: Session, user: User, code: str) -> Entry:
    """Start or resume `user`'s participation in the campaign of `code`, under the web journey's
    rules (archived campaigns refused, an identifier asked first when the campaign wants one).
    Raises `NotFound` (code "unknown_code") and `NotAllowed` (code "archived")."""
    normalized = normalize_code(code)
    campaign = journey.campaign_by_code(session, normalized) if normalized else None
    if campaign is None:
        raise NotFound("no campaign has this code", code="unknown_code")
    participation, page = journey.enter(session, campaign, user)
    return Entry(campaign, participation, page)
