"""The domain schema: people, organizations, campaigns and what students do in them.

Learning content (areas, competences, tubes, skills, challenges) lives in versioned content packs,
not in these tables: rows refer to content by its stable string ids (`skill_id`, `challenge_id`…).

Every invariant that two concurrent requests could break is a database constraint, so that the
second request fails cleanly instead of corrupting data: one active participation per user and
campaign, one started assessment per participation, one answer per challenge per assessment, one
knowledge element per skill per assessment, one learner per user in an organization, unique
campaign codes, UAIs and login identities.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    exists,
    false,
    text,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from config.db import Base, JSONDocument, UTCDateTime, enum_type, utcnow

# -- vocabularies -------------------------------------------------------------------------------


class OrganizationType(enum.StrEnum):
    SCO = "SCO"  # schools (collèges, lycées), identified by their UAI
    SUP = "SUP"  # higher education
    PRO = "PRO"  # companies and other professional bodies


class MembershipRole(enum.StrEnum):
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


class AuthenticationProvider(enum.StrEnum):
    PASSWORD = "PASSWORD"  # noqa: S105 - e-mail or username + password
    LTI = "LTI"  # issuer = platform `iss`, external_id = `sub`
    SAML = "SAML"  # issuer = identity provider slug, external_id = NameID or GAR IDO


class CampaignType(enum.StrEnum):
    ASSESSMENT = "ASSESSMENT"
    PROFILES_COLLECTION = "PROFILES_COLLECTION"


class ParticipationStatus(enum.StrEnum):
    STARTED = "STARTED"
    TO_SHARE = "TO_SHARE"
    SHARED = "SHARED"


class AssessmentState(enum.StrEnum):
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"


class AssessmentType(enum.StrEnum):
    CAMPAIGN = "CAMPAIGN"
    PREVIEW = "PREVIEW"  # a teacher trying their own campaign; never shared


class AnswerResult(enum.StrEnum):
    OK = "ok"
    KO = "ko"
    SKIPPED = "skipped"  # "Je passe"
    TIMED_OUT = "timedout"
    PARTIALLY = "partially"  # QROCM with some fields right: still not validated


class KnowledgeElementStatus(enum.StrEnum):
    VALIDATED = "validated"
    INVALIDATED = "invalidated"
    RESET = "reset"  # erased by a "reset" retry


class KnowledgeElementSource(enum.StrEnum):
    DIRECT = "direct"
    INFERRED = "inferred"


NAME_MAX_LENGTH = 255  # names of people and organizations (their columns' length)


# -- people -------------------------------------------------------------------------------------


class PersonTraits:
    """What is derived from a user's columns, alike for a `User` and for the signed-in user a page
    read without the ORM (`campaigns.accounts.sessions.Person`)."""

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()  # type: ignore[attr-defined]

    @property
    def email_proven(self) -> bool:
        return self.email is not None and self.email_verified_at is not None  # type: ignore[attr-defined]


class User(Base, PersonTraits):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(255))
    last_name: Mapped[str] = mapped_column(String(255))
    # Stored lower-cased; SSO students (GAR) have none.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    # When the owner of `email` proved it (opened a link mailed to it); None: "à confirmer".
    # Only a proven address receives a role, a learner link or an SSO/LTI identity link.
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Generated for school students without e-mail ("prenom.nom1203").
    username: Mapped[str | None] = mapped_column(String(255), unique=True)
    locale: Mapped[str] = mapped_column(String(8), default="fr", server_default="fr")
    cgu_accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_signed_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    authentication_methods: Mapped[list[AuthenticationMethod]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    memberships: Mapped[list[Membership]] = relationship(back_populates="user")

    __table_args__ = (
        CheckConstraint("email IS NULL OR email = lower(email)", name="email_lowercase"),
        # A username can never be mistaken for someone else's e-mail at sign-in.
        CheckConstraint(
            "username IS NULL OR (username = lower(username) AND username NOT LIKE '%@%')",
            name="username_format",
        ),
    )


class UserSession(Base):
    """A signed-in browser. The cookie carries a random id of which only the SHA-256 is stored;
    signing out revokes the row, so a copied cookie stops working everywhere at once. Sessions
    end at `expires_at` whatever the activity (absolute lifetime)."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Signed in with a temporary password: nothing but choosing a new one is reachable.
    password_change_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    __table_args__ = (Index("ix_user_sessions_expires_at", "expires_at"),)


class AccountTokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "VERIFY_EMAIL"  # "Confirmez votre adresse e-mail"
    RESET_PASSWORD = "RESET_PASSWORD"  # noqa: S105 - "Mot de passe oublié"


class AccountToken(Base):
    """A single-use, expiring link mailed to an address: only the SHA-256 of its token is
    stored. It is bound to the address it was sent to: if the account's address changed since,
    the link proves nothing and is refused."""

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[AccountTokenPurpose] = mapped_column(
        enum_type(AccountTokenPurpose, "account_token_purpose")
    )
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuthenticationMethod(Base):
    """One way a user signs in. A user has at most one per provider and issuer."""

    __tablename__ = "authentication_methods"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[AuthenticationProvider] = mapped_column(
        enum_type(AuthenticationProvider, "authentication_provider")
    )
    # LTI platform issuer or SAML identity-provider slug; NULL for passwords.
    issuer: Mapped[str | None] = mapped_column(String(512))
    # LTI `sub`, SAML NameID or GAR IDO; NULL for passwords.
    external_id: Mapped[str | None] = mapped_column(String(512))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # What the LMS or identity provider said at the last sign-in (names, e-mail, roles, classes…),
    # as the connector read it; NULL for passwords.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="authentication_methods")

    __table_args__ = (
        # One identity belongs to one user: two launches racing to create it cannot both win.
        UniqueConstraint("provider", "issuer", "external_id"),
        # One identity per user and platform or identity provider…
        UniqueConstraint("user_id", "provider", "issuer"),
        # …and one password (NULL issuers escape the constraint above).
        Index(
            "uq_authentication_methods_user_id_password",
            "user_id",
            unique=True,
            sqlite_where=text("provider = 'PASSWORD'"),
            postgresql_where=text("provider = 'PASSWORD'"),
        ),
        CheckConstraint(
            "(provider = 'PASSWORD' AND password_hash IS NOT NULL"
            " AND issuer IS NULL AND external_id IS NULL)"
            " OR (provider <> 'PASSWORD' AND password_hash IS NULL"
            " AND coalesce(issuer, '') <> '' AND coalesce(external_id, '') <> '')",
            name="credentials_match_provider",
        ),
    )


# -- organizations ------------------------------------------------------------------------------


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[OrganizationType] = mapped_column(enum_type(OrganizationType, "organization_type"))
    # French school code: 7 digits and a letter. Unique when present.
    uai: Mapped[str | None] = mapped_column(String(8), unique=True)
    # Students come through the GAR: the direct campaign link is hidden from teachers.
    uses_gar: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    memberships: Mapped[list[Membership]] = relationship(back_populates="organization")

    __table_args__ = (
        CheckConstraint("length(trim(name)) > 0", name="name_not_blank"),
        CheckConstraint("uai IS NULL OR (length(uai) = 8 AND uai = upper(uai))", name="uai_format"),
        CheckConstraint("uai IS NULL OR type = 'SCO'", name="uai_only_for_schools"),
        # Organizations without a UAI are told apart by name.
        Index(
            "uq_organizations_name_without_uai",
            "name",
            unique=True,
            sqlite_where=text("uai IS NULL"),
            postgresql_where=text("uai IS NULL"),
        ),
    )


class Membership(Base):
    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[MembershipRole] = mapped_column(enum_type(MembershipRole, "membership_role"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")

    __table_args__ = (UniqueConstraint("organization_id", "user_id"),)


class Invitation(Base):
    """An invitation to join an organization, sent by e-mail to someone without an account (or
    not signed in). Only a hash of its token is stored; it is used once."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[MembershipRole] = mapped_column(enum_type(MembershipRole, "membership_role"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        # One pending invitation per person and organization (inviting again renews it).
        Index(
            "uq_invitations_organization_id_email_pending",
            "organization_id",
            "email",
            unique=True,
            sqlite_where=text("accepted_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=text("accepted_at IS NULL AND cancelled_at IS NULL"),
        ),
    )


class Learner(Base):
    """A student as the school knows them (imported learner list), linked at most once to a user."""

    __tablename__ = "learners"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    first_name: Mapped[str] = mapped_column(String(255))
    last_name: Mapped[str] = mapped_column(String(255))
    birthdate: Mapped[dt.date | None] = mapped_column(Date)
    division: Mapped[str | None] = mapped_column(String(64))
    # INE, the national student number, when the import carries it.
    national_student_id: Mapped[str | None] = mapped_column(String(32))
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("organization_id", "user_id"),
        UniqueConstraint("organization_id", "national_student_id"),
        Index("ix_learners_organization_id_birthdate", "organization_id", "birthdate"),
    )


# -- learning content -----------------------------------------------------------------------------


class ContentRelease(Base):
    """An imported content pack version, files and all, so that every process serves the same
    content and campaigns can always reach the version they froze."""

    __tablename__ = "content_releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    pack_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    checksum: Mapped[str] = mapped_column(String(64))
    files: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("pack_id", "version"),
        Index(
            "uq_content_releases_active",
            "is_active",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )


# -- campaigns ----------------------------------------------------------------------------------


class TargetProfile(Base):
    """What a campaign assesses: tubes of the content, each capped at a level."""

    __tablename__ = "target_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    # Owner organization; None for the profiles every organization may use.
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # Stable id in the content pack, when the profile comes from one.
    content_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    is_archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    tubes: Mapped[list[TargetProfileTube]] = relationship(
        back_populates="target_profile", cascade="all, delete-orphan"
    )


class TargetProfileTube(Base):
    __tablename__ = "target_profile_tubes"

    target_profile_id: Mapped[int] = mapped_column(
        ForeignKey("target_profiles.id", ondelete="CASCADE"), primary_key=True
    )
    tube_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)

    target_profile: Mapped[TargetProfile] = relationship(back_populates="tubes")

    __table_args__ = (CheckConstraint("level BETWEEN 1 AND 8", name="level_range"),)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    # 6 letters + 3 digits from an alphabet without I, L, O, 0, 1.
    code: Mapped[str] = mapped_column(String(9), unique=True)
    type: Mapped[CampaignType] = mapped_column(enum_type(CampaignType, "campaign_type"))
    name: Mapped[str] = mapped_column(String(255))  # seen by teachers only
    title: Mapped[str | None] = mapped_column(String(255))  # seen by students
    landing_text: Mapped[str | None] = mapped_column(Text)
    external_id_label: Mapped[str | None] = mapped_column(String(255))
    multiple_sendings: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    target_profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("target_profiles.id", ondelete="RESTRICT"), index=True
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # Content pack version whose skills were frozen into `skills`.
    content_version: Mapped[str | None] = mapped_column(String(64))
    # How the next challenge is chosen (engine.selection.SELECTORS).
    selector: Mapped[str] = mapped_column(String(32), default="adaptive", server_default="adaptive")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    archived_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    skills: Mapped[list[CampaignSkill]] = relationship(
        back_populates="campaign", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint("length(code) = 9 AND code = upper(code)", name="code_format"),
        CheckConstraint("length(trim(name)) > 0", name="name_not_blank"),
        CheckConstraint(
            "landing_text IS NULL OR length(landing_text) <= 5000", name="landing_text_length"
        ),
        CheckConstraint("selector IN ('baseline', 'adaptive')", name="selector_known"),
        CheckConstraint(
            "(type = 'ASSESSMENT' AND target_profile_id IS NOT NULL)"
            " OR (type = 'PROFILES_COLLECTION' AND target_profile_id IS NULL)",
            name="target_profile_matches_type",
        ),
    )


class CampaignSkill(Base):
    """The skills a campaign assesses, frozen when it is created."""

    __tablename__ = "campaign_skills"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    skill_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    campaign: Mapped[Campaign] = relationship(back_populates="skills")


LIVE_PARTICIPATION = "NOT is_improved AND deleted_at IS NULL"


class Participation(Base):
    """A user in a campaign: STARTED → TO_SHARE → SHARED. Shared figures are frozen."""

    __tablename__ = "participations"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    learner_id: Mapped[int | None] = mapped_column(
        ForeignKey("learners.id", ondelete="SET NULL"), index=True
    )
    participant_external_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[ParticipationStatus] = mapped_column(
        enum_type(ParticipationStatus, "participation_status")
    )
    # True once a newer participation replaced this one (campaigns with multiple sendings).
    is_improved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    shared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Frozen at sharing time: what the teacher sees and exports.
    mastery_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    validated_skills_count: Mapped[int | None] = mapped_column(Integer)
    pix_score: Mapped[int | None] = mapped_column(Integer)
    shared_results: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)

    __table_args__ = (
        # One live participation per user and campaign; older ones are kept as "improved",
        # deleted ones as deleted…
        Index(
            "uq_participations_campaign_id_user_id_live",
            "campaign_id",
            "user_id",
            unique=True,
            sqlite_where=text(LIVE_PARTICIPATION),
            postgresql_where=text(LIVE_PARTICIPATION),
        ),
        # …and per school learner, whichever of their accounts they use.
        Index(
            "uq_participations_campaign_id_learner_id_live",
            "campaign_id",
            "learner_id",
            unique=True,
            sqlite_where=text(f"{LIVE_PARTICIPATION} AND learner_id IS NOT NULL"),
            postgresql_where=text(f"{LIVE_PARTICIPATION} AND learner_id IS NOT NULL"),
        ),
        Index("ix_participations_campaign_id_status", "campaign_id", "status"),
        CheckConstraint(
            "(status = 'SHARED' AND shared_at IS NOT NULL) OR (status <> 'SHARED' AND shared_at IS NULL)",
            name="shared_at_matches_status",
        ),
        CheckConstraint(
            "mastery_rate IS NULL OR (mastery_rate >= 0 AND mastery_rate <= 1)",
            name="mastery_rate_range",
        ),
    )


class Assessment(Base):
    """One run of the adaptive test; remembers the question on screen so any device resumes it."""

    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    participation_id: Mapped[int | None] = mapped_column(
        ForeignKey("participations.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[AssessmentType] = mapped_column(enum_type(AssessmentType, "assessment_type"))
    state: Mapped[AssessmentState] = mapped_column(enum_type(AssessmentState, "assessment_state"))
    # "Améliorer mes résultats": failures recorded before this test may be asked again.
    is_improving: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    current_challenge_id: Mapped[str | None] = mapped_column(String(64))
    current_challenge_asked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The percentage shown to the student: it only moves forward, 100 once the test is over.
    progress: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))

    __table_args__ = (
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress_percent"),
        # A double click on "Je commence" cannot open two tests.
        Index(
            "uq_assessments_participation_id_started",
            "participation_id",
            unique=True,
            sqlite_where=text("state = 'STARTED'"),
            postgresql_where=text("state = 'STARTED'"),
        ),
        CheckConstraint(
            "type <> 'CAMPAIGN' OR participation_id IS NOT NULL", name="campaign_has_participation"
        ),
    )


class Answer(Base):
    __tablename__ = "answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id", ondelete="CASCADE"))
    challenge_id: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    result: Mapped[AnswerResult] = mapped_column(enum_type(AnswerResult, "answer_result"))
    time_spent_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # A double-submitted answer is stored once.
        UniqueConstraint("assessment_id", "challenge_id"),
    )


class ChallengeReport(Base):
    """ "Signaler un problème" on a question: kept for the content team."""

    __tablename__ = "challenge_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assessments.id", ondelete="SET NULL")
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    challenge_id: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class KnowledgeElement(Base):
    """What we know of one user and one skill; per user, reused across campaigns."""

    __tablename__ = "knowledge_elements"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assessment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assessments.id", ondelete="SET NULL")
    )
    answer_id: Mapped[int | None] = mapped_column(ForeignKey("answers.id", ondelete="SET NULL"))
    skill_id: Mapped[str] = mapped_column(String(64))
    tube_id: Mapped[str] = mapped_column(String(64))
    competence_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[KnowledgeElementStatus] = mapped_column(
        enum_type(KnowledgeElementStatus, "knowledge_element_status")
    )
    source: Mapped[KnowledgeElementSource] = mapped_column(
        enum_type(KnowledgeElementSource, "knowledge_element_source")
    )
    earned_pix: Mapped[Decimal] = mapped_column(Numeric(6, 3), default=Decimal(0))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("assessment_id", "skill_id"),
        CheckConstraint("earned_pix >= 0 AND earned_pix <= 8", name="earned_pix_range"),
        CheckConstraint("status = 'validated' OR earned_pix = 0", name="pix_only_when_validated"),
    )


# -- district administration ----------------------------------------------------------------------


class InstanceAdmin(Base):
    """A district (instance-wide) administrator: the only people who reach `/admin`. Granted and
    revoked on the command line (`parcours admins`), only to accounts with a proven address."""

    __tablename__ = "instance_admins"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None: granted on the command line (or by someone whose account is gone).
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


# Read with the user, in the same statement (an EXISTS on the unique index): the header shows
# "Administration" to instance administrators on every page without a query of its own.
# (Correlated to the user only: a statement that also reads organizations keeps its own.)
User.is_instance_admin = column_property(
    exists().where(InstanceAdmin.user_id == User.id).correlate_except(InstanceAdmin)
)
# Likewise "Espace Orga" for members of an organization that is not archived.
User.is_member = column_property(
    exists()
    .where(Membership.user_id == User.id, Membership.organization_id == Organization.id)
    .where(Organization.archived_at.is_(None))
    .correlate_except(Membership, Organization)
)


class AuditEntry(Base):
    """One district-administration action, written in the transaction of the action itself.

    Append-only (the database refuses updates, except the actor's id set to NULL when that
    account is deleted, and deletions): who acted is copied into `actor_label` and the object
    into `object_type`, `object_id` and `object_label`, so an entry outlives both. `details`
    holds what changed; never a secret, a token or a password."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor_label: Mapped[str] = mapped_column(String(600))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    object_label: Mapped[str] = mapped_column(String(600), default="", server_default="")
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)

    __table_args__ = (
        Index("ix_audit_entries_created_at", "created_at"),
        Index("ix_audit_entries_object_type_object_id", "object_type", "object_id"),
        Index("ix_audit_entries_action", "action"),
    )


# "The latest element per user and skill", read from the index alone (migration 0005).
Index(
    "ix_knowledge_elements_user_id_skill_id_latest",
    KnowledgeElement.user_id,
    KnowledgeElement.skill_id,
    KnowledgeElement.created_at.desc(),
    KnowledgeElement.id.desc(),
    postgresql_include=["status"],
)
