"""Builders for journey tests: a school, a teacher, campaigns on the bundled content."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.accounts import users
from campaigns.journey import services as journey
from campaigns.orga import campaign_admin
from campaigns.shared.content import import_pack
from campaigns.shared.models import CampaignType, OrganizationType, TargetProfile
from engine.content import BUNDLED_PACK
from tests.factories import organization_with_admin

STUDENT_PASSWORD = "Eleve-Motdepasse-1"


def school(session: Session, *, uai: str = "0750101A"):
    import_pack(session, BUNDLED_PACK)
    created = organization_with_admin(
        session,
        name=f"Collège {uai}",
        type=OrganizationType.SCO,
        uai=uai,
        admin_email=f"prof-{uai}@example.org",
    )
    return created.organization, created.admin


def profile(session: Session, key: str = "tp-competence-4.3") -> TargetProfile:
    return session.scalars(select(TargetProfile).where(TargetProfile.content_key == key)).one()


def assessment_campaign(
    session: Session, organization, teacher, *, key: str = "tp-competence-4.3", **fields
):
    return campaign_admin.create_campaign(
        session,
        organization=organization,
        creator=teacher,
        name=fields.pop("name", "Évaluation"),
        type=CampaignType.ASSESSMENT,
        target_profile=profile(session, key),
        title=fields.pop("title", "Parcours santé et numérique"),
        **fields,
    )


def student(session: Session, n: int = 1):
    return users.create_user(
        session,
        first_name="Léa",
        last_name=f"Élève{n}",
        email=f"eleve{n}@example.org",
        password=STUDENT_PASSWORD,
    )


def timed_challenge(session: Session, campaign):
    """A timed challenge among the campaign's skills."""
    content = journey.campaign_content(session, campaign)
    return next(
        c for s in content.index.skills.values() for c in s.playable_challenges if c.is_timed
    )
