"""What the connectors (`lti_tool`, `sso`) use of Parcours: the one module of `campaigns` they
import (an import-linter contract keeps it so). They write no account logic of their own.

A connector's sign-in request, once it has checked the launch or the assertion:

1. `sign_in_external(session, ExternalIdentity(...))`: the user of that identity, created at
   its first sign-in (never matched to an existing account by e-mail), names refreshed;
2. `start_session(user)`: the same signed-in session as a password sign-in, session id renewed
   (`undo_sign_in()` after rolling back a refused request: nobody stays signed in);
3. for a teacher, `ensure_member(session, organization, user)` (MEMBER, never ADMIN by that
   alone); for a student, `match_student(session, organization, identity, birthdate)` matches
   the vouched names and the typed birth date with the school's learner list (`has_learners`,
   `parse_birthdate`; each guess first counted by `count_guess`, per identity and per
   student's names, shared by both connectors) and links the one learner for good, or gives
   the account that holds it this identity too when everything is exact (the same student
   from the ENT and the LMS: `join_identity`), or re-points a GAR student's identity whose IDO
   changed (another ENT) when the connector's `moved` says so (`repoint_identity`); a learner
   someone else holds is never given away; nothing is kept of a failed match;
   `find_external_user` says whether an identity signed in before, creating nothing;
4. `enter_campaign(session, user, code)`: started or resumed as "Je commence" would, with the
   page to land on (`Entry.url`: rules, question, results…);
5. commit.

`subscribe(Event.SHARED, listener)` (from the app factory) runs `listener(session,
participation)` in the transaction of every share; a failing listener undoes the share.
Logs name external identities by `identity_ref`, never by their id.

District administration: `add_admin_section(app, blueprint, key=, endpoint=)` puts a
connector's pages under `/admin` (same 404 gate for everyone but instance administrators, CSRF
checked there), `audit(...)` writes the audit log in the request's transaction and
`describe_audit` gives its actions their labels in the journal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import session as flask_session
from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.accounts.auth import current_user, undo_sign_in
from campaigns.accounts.auth import sign_in as start_session
from campaigns.accounts.auth import sign_out as end_session
from campaigns.accounts.data import erase_user, export_user
from campaigns.accounts.external import (
    ExternalIdentity,
    RecordedIdentity,
    find_external_user,
    identity_ref,
    join_identity,
    recorded_identity,
    repoint_identity,
    sign_in_external,
)
from campaigns.accounts.users import EmailNotProven
from campaigns.district import services as district
from campaigns.district.views import add_section as add_admin_section
from campaigns.district.views import audit, describe_audit, is_instance_admin
from campaigns.journey import services as journey
from campaigns.journey.services import NextPage, NotAllowed, NotFound
from campaigns.journey.views import page_url
from campaigns.orga.campaign_admin import create_campaign, usable_target_profiles
from campaigns.orga.learner_match import (
    MatchOutcome,
    count_guess,
    has_learners,
    match_student,
    parse_birthdate,
)
from campaigns.orga.learners import AlreadyLinked, LearnerTaken, attach_learner
from campaigns.orga.reporting_views import add_campaign_section
from campaigns.orga.team import ensure_member
from campaigns.shared.codes import normalize_code
from campaigns.shared.errors import AlreadyExists, InvalidInput, ServiceError
from campaigns.shared.events import Event, ListenerFailed, subscribe, unsubscribe
from campaigns.shared.models import (
    Answer,
    Assessment,
    AuthenticationProvider,
    Campaign,
    CampaignType,
    Learner,
    Membership,
    MembershipRole,
    Organization,
    Participation,
    ParticipationStatus,
    User,
)
from campaigns.shared.names import normalize_name
from campaigns.shared.organizations import add_sign_in_entry, set_gar_organizations

__all__ = [
    "AlreadyExists",
    "AlreadyLinked",
    "AuthenticationProvider",
    "Campaign",
    "CampaignType",
    "EmailNotProven",
    "Entry",
    "Event",
    "ExternalIdentity",
    "InvalidInput",
    "Learner",
    "LearnerTaken",
    "ListenerFailed",
    "MatchOutcome",
    "MembershipRole",
    "NextPage",
    "NotAllowed",
    "NotFound",
    "Organization",
    "Participation",
    "ParticipationStatus",
    "RecordedIdentity",
    "ServiceError",
    "User",
    "add_admin_section",
    "add_campaign_section",
    "add_sign_in_entry",
    "attach_learner",
    "audit",
    "audit_command_line",
    "count_guess",
    "create_campaign",
    "current_user",
    "describe_audit",
    "end_session",
    "ensure_member",
    "enter_campaign",
    "erase_user",
    "export_user",
    "find_external_user",
    "find_organization",
    "has_answered",
    "has_learners",
    "identity_ref",
    "is_instance_admin",
    "is_member",
    "join_identity",
    "match_student",
    "normalize_name",
    "open_campaigns",
    "panel_url",
    "parse_birthdate",
    "recorded_identity",
    "repoint_identity",
    "set_gar_organizations",
    "sign_in_external",
    "start_session",
    "subscribe",
    "undo_sign_in",
    "unsubscribe",
    "usable_target_profiles",
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


def find_organization(session: Session, reference: str) -> Organization | None:
    """The organization of an id or a UAI (what commands take as `--org`)."""
    reference = reference.strip()
    if reference.isdecimal() and len(reference) < 10:
        return session.get(Organization, int(reference))
    return session.scalars(
        select(Organization).where(Organization.uai == reference.upper())
    ).one_or_none()


def audit_command_line(
    session: Session,
    action: str,
    *,
    object_type: str,
    object_id: int | None,
    object_label: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record in the audit log an action done with the `parcours` command."""
    district.record(
        session,
        district.COMMAND_LINE,
        action,
        object_type=object_type,
        object_id=object_id,
        object_label=object_label,
        details=details,
    )


def open_campaigns(session: Session, organization: Organization) -> list[Campaign]:
    """The organization's campaigns that are not archived, newest first."""
    return list(
        session.scalars(
            select(Campaign)
            .where(Campaign.organization_id == organization.id, Campaign.archived_at.is_(None))
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        )
    )


def is_member(session: Session, user: User, organization_id: int) -> bool:
    """Whether `user` belongs to the organization (any role) with a usable address: who may see
    and act on its campaigns in the panel."""
    if user.email is not None and user.email_verified_at is None:
        return False
    return (
        session.scalar(
            select(Membership.id).where(
                Membership.user_id == user.id, Membership.organization_id == organization_id
            )
        )
        is not None
    )


def has_answered(session: Session, participation_id: int) -> bool:
    """Whether the participation has at least one answer (its test is under way)."""
    return (
        session.scalar(
            select(Answer.id)
            .join(Assessment, Assessment.id == Answer.assessment_id)
            .where(Assessment.participation_id == participation_id)
            .limit(1)
        )
        is not None
    )


def panel_url(organization: Organization, campaign: Campaign | None = None) -> str:
    """The teacher panel of `organization` (the campaign's page when given), made the signed-in
    member's current workspace."""
    flask_session["organization_id"] = organization.id
    if campaign is not None:
        return url_for("orga_campaign.activity", campaign_id=campaign.id)
    return url_for("orga.home")


def enter_campaign(
    session: Session, user: User, code: str | Campaign, *, external_id: str | None = None
) -> Entry:
    """Start or resume `user`'s participation in the campaign of `code` (or in a campaign the
    connector already read), under the web journey's rules (archived campaigns refused; an
    identifier asked first when the campaign wants one, unless the connector has it:
    `external_id`). Codes come from signed launches, not from typing, so no guessing limit
    applies here. Raises `NotFound` (code "unknown_code") and `NotAllowed` (code "archived")."""
    if isinstance(code, Campaign):
        campaign: Campaign | None = code
    else:
        normalized = normalize_code(code)
        campaign = journey.campaign_by_code(session, normalized) if normalized else None
    if campaign is None:
        raise NotFound("no campaign has this code", code="unknown_code")
    participation, page = journey.enter(session, campaign, user, external_id=external_id)
    return Entry(campaign, participation, page)
