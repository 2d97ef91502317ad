"""Small builders for rows the tests need; each flushes and returns the row."""

from __future__ import annotations

import itertools

from sqlalchemy.orm import Session

from campaigns.models import (
    Assessment,
    AssessmentState,
    AssessmentType,
    Campaign,
    CampaignType,
    Organization,
    OrganizationType,
    Participation,
    ParticipationStatus,
    TargetProfile,
    TargetProfileTube,
    User,
)

_sequence = itertools.count(1)


def user(session: Session, **fields) -> User:
    n = next(_sequence)
    row = User(first_name="Élève", last_name=f"N{n}", email=f"user{n}@example.org")
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    session.flush()
    return row


def organization(session: Session, **fields) -> Organization:
    n = next(_sequence)
    row = Organization(name=f"Collège {n}", type=OrganizationType.SCO, uai=f"{n:07d}A")
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    session.flush()
    return row


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
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    session.flush()
    return row


def participation(session: Session, campaign: Campaign, student: User, **fields) -> Participation:
    row = Participation(
        campaign_id=campaign.id, user_id=student.id, status=ParticipationStatus.STARTED
    )
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    session.flush()
    return row


def assessment(session: Session, participation: Participation, **fields) -> Assessment:
    row = Assessment(
        user_id=participation.user_id,
        participation_id=participation.id,
        type=AssessmentType.CAMPAIGN,
        state=AssessmentState.STARTED,
    )
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    session.flush()
    return row
