"""Builders for teacher-panel tests: two organizations, their teams, campaigns and participants
who really took the test (through the journey services, on the bundled content)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy.orm import Session

from campaigns.accounts import users
from campaigns.journey import services as journey
from campaigns.shared.models import Campaign, Membership, MembershipRole, Organization, User
from config.db import utcnow
from engine.answers import expected_answer
from engine.content import ChallengeType
from tests.conftest import csrf_token
from tests.journey_helpers import assessment_campaign, school

TEACHER_PASSWORD = "Prof-Motdepasse-1"


def teacher(
    session: Session,
    organization: Organization,
    *,
    email: str,
    role: MembershipRole = MembershipRole.MEMBER,
    first_name: str = "Camille",
    last_name: str = "Prof",
    terms: bool = True,
) -> User:
    """A member of `organization` with a known password (terms of use accepted by default)."""
    user = users.find_user_by_login(session, email) or users.create_user(
        session, first_name=first_name, last_name=last_name, email=email
    )
    users.set_password(session, user, TEACHER_PASSWORD)
    user.email_verified_at = utcnow()  # as after accepting the invitation mailed to them
    if terms:
        user.cgu_accepted_at = utcnow()
    session.add(Membership(organization_id=organization.id, user_id=user.id, role=role))
    session.flush()
    return user


def sign_in(client, email: str, password: str = TEACHER_PASSWORD) -> None:
    token = csrf_token(client, "/connexion")
    response = client.post(
        "/connexion", data={"login": email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def take_test(
    session: Session,
    campaign: Campaign,
    user: User,
    *,
    success: float = 0.7,
    seed: int = 0,
    share: bool = True,
    answers: int | None = None,
):
    """`user` joins `campaign` and answers (right with probability `success`) until the end, or
    only `answers` questions; then shares when asked. Returns the participation."""
    rng = random.Random(seed)
    participation = journey.join(session, campaign, user)
    assessment = journey.open_assessment(session, participation)
    given = 0
    while answers is None or given < answers:
        challenge = journey.current_challenge(session, assessment)
        if challenge is None:
            break
        journey.start_clock(session, assessment, challenge)
        value = expected_answer(challenge)
        if rng.random() >= success:
            value = {
                ChallengeType.QCU: "1" if value != "1" else "2",
                ChallengeType.QCM: "1",
            }.get(challenge.type, "je ne sais pas")
            if challenge.type is ChallengeType.QROCM:
                value = '{"x": "?"}'
        journey.submit_answer(session, assessment, challenge_id=challenge.id, value=value)
        given += 1
    if share and answers is None:
        journey.share(session, participation)
    session.flush()
    return participation


@dataclass
class World:
    school: Organization
    admin: User
    member: User
    campaign: Campaign  # owned by the admin
    member_campaign: Campaign  # owned by the member
    other: Organization
    other_admin: User
    other_campaign: Campaign


def world(session: Session) -> World:
    """A school with an admin and a member, each owning a campaign; another school with its
    admin and campaign (for authorization tests). Everybody's password is TEACHER_PASSWORD."""
    organization, admin = school(session, uai="0750201A")
    users.set_password(session, admin, TEACHER_PASSWORD)
    admin.first_name, admin.last_name, admin.cgu_accepted_at = "Alice", "Admin", utcnow()
    member = teacher(session, organization, email="membre@example.org", last_name="Membre")
    campaign = assessment_campaign(session, organization, admin, name="Évaluation 3e A")
    member_campaign = assessment_campaign(
        session, organization, member, name="Évaluation 4e B", owner=member
    )
    other, other_admin = school(session, uai="0750202B")
    users.set_password(session, other_admin, TEACHER_PASSWORD)
    other_admin.cgu_accepted_at = utcnow()
    other_campaign = assessment_campaign(session, other, other_admin, name="Autre collège")
    session.flush()
    return World(
        organization, admin, member, campaign, member_campaign, other, other_admin, other_campaign
    )
