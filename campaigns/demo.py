"""Demo data: one school, its admin teacher, a few students and its learner list.

Seeding is idempotent: running it again finds the same rows and gives every demo account a new
random password, printed once (the demo never ships a known password).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.accounts import users
from campaigns.district import services as district
from campaigns.orga import campaign_admin
from campaigns.shared.models import (
    Campaign,
    CampaignType,
    Learner,
    Membership,
    MembershipRole,
    Organization,
    OrganizationType,
    TargetProfile,
    User,
)
from config.db import utcnow
from engine.answers import expected_answer

DEMO_UAI = "0999999Z"
DEMO_ORGANIZATION = "Collège Parcours (démo)"
DEMO_TEACHER = ("Camille", "Martin", "enseignant.demo@example.org")
# A district administrator (`/admin`), member of no organization.
DEMO_DISTRICT_ADMIN = ("Dominique", "Rectorat", "admin.demo@example.org")
DEMO_STUDENTS = [
    ("Léa", "Bernard", "lea.demo@example.org", dt.date(2011, 3, 14), "4e B"),
    ("Hugo", "Petit", "hugo.demo@example.org", dt.date(2011, 7, 2), "4e B"),
    ("Inès", "Durand", "ines.demo@example.org", dt.date(2010, 11, 23), "3e A"),
]
# Known to the school but not yet signed up: they will be matched when they arrive by SSO.
DEMO_UNLINKED_LEARNERS = [
    ("Noah", "Lefèvre", dt.date(2011, 1, 9), "4e B"),
    ("Chloé", "Moreau", dt.date(2010, 5, 30), "3e A"),
]


# Classmates who already took the assessment (answers simulated), so that the teacher panel has
# something to show: (first name, last name, division, chance of a right answer, then what they
# did: "shared", "finished" (not sent yet) or "started").
DEMO_CLASSMATES = [
    ("Adam", "Roux", "4e B", 0.85, "shared"),
    ("Jade", "Fournier", "4e B", 0.6, "shared"),
    ("Louis", "Girard", "3e A", 0.75, "shared"),
    ("Emma", "Bonnet", "3e A", 0.45, "shared"),
    ("Lucas", "Dupont", "4e B", 0.7, "finished"),
    ("Manon", "Lambert", "3e A", 0.65, "started"),
]


@dataclass(frozen=True)
class Login:
    role: str
    name: str
    login: str
    password: str


DEMO_CAMPAIGNS = [
    # (name for teachers, type, target profile, title for students, landing text)
    (
        "Démo — évaluation cycle 4",
        CampaignType.ASSESSMENT,
        "tp-cycle4",
        "Compétences numériques — cycle 4",
        "Bienvenue ! Ce parcours fait le point sur vos compétences numériques.\n"
        "Prenez votre temps, et n’hésitez pas à chercher sur Internet.",
    ),
    (
        "Démo — collecte de profils",
        CampaignType.PROFILES_COLLECTION,
        None,
        "Envoyez votre profil de compétences",
        "Vérifiez votre profil puis envoyez-le à votre enseignant.",
    ),
]


@dataclass
class DemoSeed:
    organization: Organization
    logins: list[Login] = field(default_factory=list)
    campaigns: list[Campaign] = field(default_factory=list)

    def as_dict(self, base_url: str) -> dict[str, object]:
        return {
            "url": base_url,
            "sign_in_url": f"{base_url}/connexion",
            "health_url": f"{base_url}/healthz",
            "organization": {
                "id": self.organization.id,
                "name": self.organization.name,
                "uai": self.organization.uai,
            },
            "logins": [login.__dict__ for login in self.logins],
            "campaigns": [
                {"code": c.code, "name": c.name, "url": f"{base_url}/campagnes/{c.code}"}
                for c in self.campaigns
            ],
        }

    def describe(self, base_url: str) -> str:
        lines = [
            f"Parcours demo — {self.organization.name} (UAI {self.organization.uai})",
            f"  open      {base_url}/",
            f"  sign in   {base_url}/connexion",
            f"  health    {base_url}/healthz",
            "  logins (new passwords at every `parcours demo`):",
        ]
        lines += [f"    {x.role:<8} {x.name:<16} {x.login:<32} {x.password}" for x in self.logins]
        lines.append("  campaigns:")
        lines += [
            f"    {c.code}  {c.name:<32} {base_url}/campagnes/{c.code}" for c in self.campaigns
        ]
        return "\n".join(lines)


def seed_demo(session: Session) -> DemoSeed:
    organization = session.scalars(
        select(Organization).where(Organization.uai == DEMO_UAI)
    ).one_or_none()
    if organization is None:
        organization = Organization(name=DEMO_ORGANIZATION, type=OrganizationType.SCO, uai=DEMO_UAI)
        session.add(organization)
        session.flush()
    seed = DemoSeed(organization)

    first, last, email = DEMO_TEACHER
    teacher = _account(session, first, last, email)
    if (
        session.scalars(
            select(Membership).where(
                Membership.organization_id == organization.id, Membership.user_id == teacher.id
            )
        ).one_or_none()
        is None
    ):
        session.add(
            Membership(
                organization_id=organization.id, user_id=teacher.id, role=MembershipRole.ADMIN
            )
        )
    seed.logins.append(_new_password(session, "teacher", teacher))

    first, last, email = DEMO_DISTRICT_ADMIN
    district_admin = _account(session, first, last, email)
    district.grant(session, email, actor=district.COMMAND_LINE)
    seed.logins.append(_new_password(session, "district", district_admin))

    for first, last, email, birthdate, division in DEMO_STUDENTS:
        student = _account(session, first, last, email)
        _learner(session, organization, first, last, birthdate, division, user=student)
        seed.logins.append(_new_password(session, "student", student))
    for first, last, birthdate, division in DEMO_UNLINKED_LEARNERS:
        _learner(session, organization, first, last, birthdate, division, user=None)
    for name, kind, profile_key, title, text in DEMO_CAMPAIGNS:
        seed.campaigns.append(
            _campaign(session, organization, teacher, name, kind, profile_key, title, text)
        )
    for n, (first, last, division, success, outcome) in enumerate(DEMO_CLASSMATES):
        classmate = _account(session, first, last, f"{first.lower()}.{n}.demo@example.org")
        _learner(
            session, organization, first, last, dt.date(2011, 1, n + 1), division, user=classmate
        )
        session.flush()
        _take_part(session, seed.campaigns, classmate, success=success, outcome=outcome, seed=n)
    session.flush()
    return seed


def _take_part(
    session: Session,
    campaigns: list[Campaign],
    user: User,
    *,
    success: float,
    outcome: str,
    seed: int,
) -> None:
    """A simulated student answers the demo campaigns (once: nothing happens the second time)."""
    from campaigns.journey import (
        services as journey,  # the journey imports the content, which imports services
    )

    rng = random.Random(seed)  # noqa: S311 (simulated answers, not secrets)
    for campaign in campaigns:
        if journey.live_participation(session, campaign, user) is not None:
            continue
        participation = journey.join(session, campaign, user)
        if campaign.type is CampaignType.ASSESSMENT:
            assessment = journey.open_assessment(session, participation)
            for asked in range(200):
                if outcome == "started" and asked == 7:
                    break
                challenge = journey.current_challenge(session, assessment)
                if challenge is None:
                    break
                journey.start_clock(session, assessment, challenge)
                right = rng.random() < success
                journey.submit_answer(
                    session,
                    assessment,
                    challenge_id=challenge.id,
                    value=expected_answer(challenge) if right else "",
                    skipped=not right,
                )
        if outcome == "shared":
            journey.share(session, participation)


def _campaign(
    session: Session,
    organization: Organization,
    teacher: User,
    name: str,
    kind: CampaignType,
    profile_key: str | None,
    title: str,
    text: str,
) -> Campaign:
    existing = session.scalars(
        select(Campaign).where(Campaign.organization_id == organization.id, Campaign.name == name)
    ).first()
    if existing is not None:
        return existing
    profile = (
        session.scalars(select(TargetProfile).where(TargetProfile.content_key == profile_key)).one()
        if profile_key
        else None
    )
    return campaign_admin.create_campaign(
        session,
        organization=organization,
        creator=teacher,
        name=name,
        type=kind,
        target_profile=profile,
        title=title,
        landing_text=text,
        multiple_sendings=True,
    )


def _account(session: Session, first: str, last: str, email: str) -> User:
    user = session.scalars(select(User).where(User.email == email)).one_or_none()
    if user is None:
        user = users.create_user(session, first_name=first, last_name=last, email=email)
    # Demo addresses (example.org) are nobody's mailbox: the demo accounts count as proven.
    user.email_verified_at = user.email_verified_at or utcnow()
    return user


def _new_password(session: Session, role: str, user: User) -> Login:
    password = users.generate_password()
    users.set_password(session, user, password)
    return Login(role=role, name=user.full_name, login=user.email or "", password=password)


def _learner(
    session: Session,
    organization: Organization,
    first: str,
    last: str,
    birthdate: dt.date,
    division: str,
    *,
    user: User | None,
) -> None:
    exists = session.scalars(
        select(Learner).where(
            Learner.organization_id == organization.id,
            Learner.first_name == first,
            Learner.last_name == last,
            Learner.birthdate == birthdate,
        )
    ).one_or_none()
    if exists is None:
        session.add(
            Learner(
                organization_id=organization.id,
                user_id=user.id if user else None,
                first_name=first,
                last_name=last,
                birthdate=birthdate,
                division=division,
            )
        )
