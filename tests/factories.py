"""Small builders for rows the tests need; each flushes and returns the row."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session

from campaigns.accounts import users
from campaigns.shared import organizations
from campaigns.shared.models import (
    Assessment,
    AssessmentState,
    AssessmentType,
    Campaign,
    CampaignType,
    KnowledgeElement,
    KnowledgeElementSource,
    KnowledgeElementStatus,
    Membership,
    MembershipRole,
    Organization,
    OrganizationType,
    Participation,
    ParticipationStatus,
    TargetProfile,
    TargetProfileTube,
    User,
)
from config.db import utcnow
from engine.content import Skill

_sequence = itertools.count(1)
Row = TypeVar("Row")


def _stored(session: Session, row: Row, fields: dict[str, object]) -> Row:
    """`row` with `fields` set over its defaults, added and flushed."""
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    session.flush()
    return row


def user(session: Session, **fields) -> User:
    n = next(_sequence)
    row = User(first_name="Élève", last_name=f"N{n}", email=f"user{n}@example.org")
    return _stored(session, row, fields)


def organization(session: Session, **fields) -> Organization:
    n = next(_sequence)
    row = Organization(name=f"Collège {n}", type=OrganizationType.SCO, uai=f"{n:07d}A")
    return _stored(session, row, fields)


def target_profile(session: Session) -> TargetProfile:
    row = TargetProfile(name="Cycle 4")
    row.tubes = [TargetProfileTube(tube_id="@recherche", level=4)]
    session.add(row)
    session.flush()
    return row


def campaign(session: Session, **fields) -> Campaign:
    n = next(_sequence)
    owner = fields.pop("owner", None) or user(session)
    org = fields.pop("organization", None) or organization(session)
    row = Campaign(
        organization_id=org.id,
        code=f"ABCDEF{n % 1000:03d}",
        type=CampaignType.ASSESSMENT,
        name="Campagne",
        target_profile_id=target_profile(session).id,
        owner_id=owner.id,
        creator_id=owner.id,
    )
    return _stored(session, row, fields)


def participation(session: Session, campaign: Campaign, student: User, **fields) -> Participation:
    row = Participation(
        campaign_id=campaign.id, user_id=student.id, status=ParticipationStatus.STARTED
    )
    return _stored(session, row, fields)


def assessment(session: Session, participation: Participation, **fields) -> Assessment:
    row = Assessment(
        user_id=participation.user_id,
        participation_id=participation.id,
        type=AssessmentType.CAMPAIGN,
        state=AssessmentState.STARTED,
    )
    return _stored(session, row, fields)


def knowledge(session: Session, user_id: int, skill: Skill, **fields) -> KnowledgeElement:
    """A direct, validated knowledge element of `skill` unless `fields` say otherwise."""
    row = KnowledgeElement(
        user_id=user_id,
        skill_id=skill.id,
        tube_id=skill.tube_id,
        competence_id=skill.competence_id,
        status=KnowledgeElementStatus.VALIDATED,
        source=KnowledgeElementSource.DIRECT,
    )
    return _stored(session, row, fields)


@dataclass(frozen=True)
class Founded:
    organization: Organization
    admin: User


def organization_with_admin(
    session: Session,
    *,
    name: str,
    type: OrganizationType,
    admin_email: str,
    uai: str | None = None,
    password: str | None = None,
) -> Founded:
    """An organization and its admin, an account with a proven address (as if they had accepted
    the invitation `parcours org create` sends)."""
    organization = organizations.create_organization(session, name=name, type=type, uai=uai)
    admin = users.find_user_by_login(session, admin_email) or users.create_user(
        session, first_name=admin_email.split("@")[0], last_name="-", email=admin_email
    )
    admin.email_verified_at = utcnow()
    if password is not None:
        users.set_password(session, admin, password)
    session.add(
        Membership(organization_id=organization.id, user_id=admin.id, role=MembershipRole.ADMIN)
    )
    session.flush()
    return Founded(organization, admin)
