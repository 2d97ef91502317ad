"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import config.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "RUNNING",
                "DONE",
                "FAILED",
                name=op.f("ck_jobs_job_status"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(length=255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_status_run_at", ["status", "run_at"], unique=False)
        batch_op.create_index(
            "uq_jobs_dedupe_key_pending",
            ["dedupe_key"],
            unique=True,
            sqlite_where=sa.text("status = 'PENDING'"),
            postgresql_where=sa.text("status = 'PENDING'"),
        )

    op.create_table(
        "organizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "SCO",
                "SUP",
                "PRO",
                name=op.f("ck_organizations_organization_type"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("uai", sa.String(length=8), nullable=True),
        sa.Column("uses_gar", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "uai IS NULL OR type = 'SCO'", name=op.f("ck_organizations_uai_only_for_schools")
        ),
        sa.CheckConstraint("length(trim(name)) > 0", name=op.f("ck_organizations_name_not_blank")),
        sa.CheckConstraint(
            "uai IS NULL OR (length(uai) = 8 AND uai = upper(uai))",
            name=op.f("ck_organizations_uai_format"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("uai", name=op.f("uq_organizations_uai")),
    )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.create_index(
            "uq_organizations_name_without_uai",
            ["name"],
            unique=True,
            sqlite_where=sa.text("uai IS NULL"),
            postgresql_where=sa.text("uai IS NULL"),
        )

    op.create_table(
        "rate_limit_counters",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("window_start", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", "window_start", name=op.f("pk_rate_limit_counters")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("first_name", sa.String(length=255), nullable=False),
        sa.Column("last_name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("locale", sa.String(length=8), server_default="fr", nullable=False),
        sa.Column("cgu_accepted_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_signed_in_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sessions_valid_after", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "username IS NULL OR (username = lower(username) AND username NOT LIKE '%@%')",
            name=op.f("ck_users_username_format"),
        ),
        sa.CheckConstraint(
            "email IS NULL OR email = lower(email)", name=op.f("ck_users_email_lowercase")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "authentication_methods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "provider",
            sa.Enum(
                "PASSWORD",
                "LTI",
                "SAML",
                name=op.f("ck_authentication_methods_authentication_provider"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("issuer", sa.String(length=512), nullable=True),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("must_change_password", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(provider = 'PASSWORD' AND password_hash IS NOT NULL AND issuer IS NULL AND external_id IS NULL) OR (provider <> 'PASSWORD' AND password_hash IS NULL AND coalesce(issuer, '') <> '' AND coalesce(external_id, '') <> '')",
            name=op.f("ck_authentication_methods_credentials_match_provider"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_authentication_methods_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authentication_methods")),
        sa.UniqueConstraint(
            "provider",
            "issuer",
            "external_id",
            name=op.f("uq_authentication_methods_provider_issuer_external_id"),
        ),
        sa.UniqueConstraint(
            "user_id",
            "provider",
            "issuer",
            name=op.f("uq_authentication_methods_user_id_provider_issuer"),
        ),
    )
    with op.batch_alter_table("authentication_methods", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_authentication_methods_user_id"), ["user_id"], unique=False
        )
        batch_op.create_index(
            "uq_authentication_methods_user_id_password",
            ["user_id"],
            unique=True,
            sqlite_where=sa.text("provider = 'PASSWORD'"),
            postgresql_where=sa.text("provider = 'PASSWORD'"),
        )

    op.create_table(
        "learners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("first_name", sa.String(length=255), nullable=False),
        sa.Column("last_name", sa.String(length=255), nullable=False),
        sa.Column("birthdate", sa.Date(), nullable=True),
        sa.Column("division", sa.String(length=64), nullable=True),
        sa.Column("national_student_id", sa.String(length=32), nullable=True),
        sa.Column("is_disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_learners_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_learners_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learners")),
        sa.UniqueConstraint(
            "organization_id",
            "national_student_id",
            name=op.f("uq_learners_organization_id_national_student_id"),
        ),
        sa.UniqueConstraint(
            "organization_id", "user_id", name=op.f("uq_learners_organization_id_user_id")
        ),
    )
    with op.batch_alter_table("learners", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_learners_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(
            "ix_learners_organization_id_birthdate", ["organization_id", "birthdate"], unique=False
        )

    op.create_table(
        "lti_platforms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("auth_login_url", sa.String(length=1024), nullable=False),
        sa.Column("auth_token_url", sa.String(length=1024), nullable=False),
        sa.Column("key_set_url", sa.String(length=1024), nullable=False),
        sa.Column("audience", sa.String(length=1024), nullable=True),
        sa.Column("frame_origins", sa.String(length=2048), server_default="", nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_lti_platforms_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_platforms")),
        sa.UniqueConstraint("issuer", "client_id", name=op.f("uq_lti_platforms_issuer_client_id")),
    )
    with op.batch_alter_table("lti_platforms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lti_platforms_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "ADMIN",
                "MEMBER",
                name=op.f("ck_memberships_membership_role"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_memberships_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint(
            "organization_id", "user_id", name=op.f("uq_memberships_organization_id_user_id")
        ),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_memberships_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_memberships_user_id"), ["user_id"], unique=False)

    op.create_table(
        "target_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("content_key", sa.String(length=128), nullable=True),
        sa.Column("is_archived", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_target_profiles_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_profiles")),
        sa.UniqueConstraint("content_key", name=op.f("uq_target_profiles_content_key")),
    )
    with op.batch_alter_table("target_profiles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_target_profiles_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=9), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "ASSESSMENT",
                "PROFILES_COLLECTION",
                name=op.f("ck_campaigns_campaign_type"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("landing_text", sa.Text(), nullable=True),
        sa.Column("external_id_label", sa.String(length=255), nullable=True),
        sa.Column("multiple_sendings", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("target_profile_id", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("creator_id", sa.Integer(), nullable=False),
        sa.Column("content_version", sa.String(length=64), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("archived_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(type = 'ASSESSMENT' AND target_profile_id IS NOT NULL) OR (type = 'PROFILES_COLLECTION' AND target_profile_id IS NULL)",
            name=op.f("ck_campaigns_target_profile_matches_type"),
        ),
        sa.CheckConstraint(
            "landing_text IS NULL OR length(landing_text) <= 5000",
            name=op.f("ck_campaigns_landing_text_length"),
        ),
        sa.CheckConstraint(
            "length(code) = 9 AND code = upper(code)", name=op.f("ck_campaigns_code_format")
        ),
        sa.CheckConstraint("length(trim(name)) > 0", name=op.f("ck_campaigns_name_not_blank")),
        sa.ForeignKeyConstraint(
            ["archived_by_id"],
            ["users.id"],
            name=op.f("fk_campaigns_archived_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_campaigns_creator_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_campaigns_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_campaigns_owner_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["target_profile_id"],
            ["target_profiles.id"],
            name=op.f("fk_campaigns_target_profile_id_target_profiles"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("code", name=op.f("uq_campaigns_code")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaigns_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_campaigns_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_campaigns_target_profile_id"), ["target_profile_id"], unique=False
        )

    op.create_table(
        "lti_deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platforms.id"],
            name=op.f("fk_lti_deployments_platform_id_lti_platforms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_deployments")),
        sa.UniqueConstraint(
            "platform_id",
            "deployment_id",
            name=op.f("uq_lti_deployments_platform_id_deployment_id"),
        ),
    )
    op.create_table(
        "target_profile_tubes",
        sa.Column("target_profile_id", sa.Integer(), nullable=False),
        sa.Column("tube_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "level BETWEEN 1 AND 8", name=op.f("ck_target_profile_tubes_level_range")
        ),
        sa.ForeignKeyConstraint(
            ["target_profile_id"],
            ["target_profiles.id"],
            name=op.f("fk_target_profile_tubes_target_profile_id_target_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "target_profile_id", "tube_id", name=op.f("pk_target_profile_tubes")
        ),
    )
    op.create_table(
        "campaign_skills",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("skill_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_skills_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "skill_id", name=op.f("pk_campaign_skills")),
    )
    op.create_table(
        "participations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=True),
        sa.Column("participant_external_id", sa.String(length=255), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "STARTED",
                "TO_SHARE",
                "SHARED",
                name=op.f("ck_participations_participation_status"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("is_improved", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("shared_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("mastery_rate", sa.Numeric(precision=5, scale=4), nullable=True),
        sa.Column("validated_skills_count", sa.Integer(), nullable=True),
        sa.Column("pix_score", sa.Integer(), nullable=True),
        sa.Column(
            "shared_results",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.CheckConstraint(
            "(status = 'SHARED' AND shared_at IS NOT NULL) OR (status <> 'SHARED' AND shared_at IS NULL)",
            name=op.f("ck_participations_shared_at_matches_status"),
        ),
        sa.CheckConstraint(
            "mastery_rate IS NULL OR (mastery_rate >= 0 AND mastery_rate <= 1)",
            name=op.f("ck_participations_mastery_rate_range"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_participations_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"],
            ["learners.id"],
            name=op.f("fk_participations_learner_id_learners"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_participations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participations")),
    )
    with op.batch_alter_table("participations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_participations_campaign_id_status", ["campaign_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_participations_learner_id"), ["learner_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_participations_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_participations_campaign_id_learner_id_live",
            ["campaign_id", "learner_id"],
            unique=True,
            sqlite_where=sa.text(
                "NOT is_improved AND deleted_at IS NULL AND learner_id IS NOT NULL"
            ),
            postgresql_where=sa.text(
                "NOT is_improved AND deleted_at IS NULL AND learner_id IS NOT NULL"
            ),
        )
        batch_op.create_index(
            "uq_participations_campaign_id_user_id_live",
            ["campaign_id", "user_id"],
            unique=True,
            sqlite_where=sa.text("NOT is_improved AND deleted_at IS NULL"),
            postgresql_where=sa.text("NOT is_improved AND deleted_at IS NULL"),
        )

    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("participation_id", sa.Integer(), nullable=True),
        sa.Column(
            "type",
            sa.Enum(
                "CAMPAIGN",
                "PREVIEW",
                name=op.f("ck_assessments_assessment_type"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "STARTED",
                "COMPLETED",
                "ABORTED",
                name=op.f("ck_assessments_assessment_state"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("current_challenge_id", sa.String(length=64), nullable=True),
        sa.Column(
            "current_challenge_asked_at", config.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "type <> 'CAMPAIGN' OR participation_id IS NOT NULL",
            name=op.f("ck_assessments_campaign_has_participation"),
        ),
        sa.ForeignKeyConstraint(
            ["participation_id"],
            ["participations.id"],
            name=op.f("fk_assessments_participation_id_participations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assessments_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assessments_participation_id"), ["participation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assessments_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_assessments_participation_id_started",
            ["participation_id"],
            unique=True,
            sqlite_where=sa.text("state = 'STARTED'"),
            postgresql_where=sa.text("state = 'STARTED'"),
        )

    op.create_table(
        "answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("challenge_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column(
            "result",
            sa.Enum(
                "ok",
                "ko",
                "skipped",
                "timedout",
                "partially",
                name=op.f("ck_answers_answer_result"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("time_spent_seconds", sa.Integer(), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_answers_assessment_id_assessments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answers")),
        sa.UniqueConstraint(
            "assessment_id", "challenge_id", name=op.f("uq_answers_assessment_id_challenge_id")
        ),
    )
    op.create_table(
        "knowledge_elements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=True),
        sa.Column("answer_id", sa.Integer(), nullable=True),
        sa.Column("skill_id", sa.String(length=64), nullable=False),
        sa.Column("tube_id", sa.String(length=64), nullable=False),
        sa.Column("competence_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "validated",
                "invalidated",
                "reset",
                name=op.f("ck_knowledge_elements_knowledge_element_status"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "source",
            sa.Enum(
                "direct",
                "inferred",
                name=op.f("ck_knowledge_elements_knowledge_element_source"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("earned_pix", sa.Numeric(precision=6, scale=3), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status = 'validated' OR earned_pix = 0",
            name=op.f("ck_knowledge_elements_pix_only_when_validated"),
        ),
        sa.CheckConstraint(
            "earned_pix >= 0 AND earned_pix <= 8",
            name=op.f("ck_knowledge_elements_earned_pix_range"),
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["answers.id"],
            name=op.f("fk_knowledge_elements_answer_id_answers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_knowledge_elements_assessment_id_assessments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_knowledge_elements_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_elements")),
        sa.UniqueConstraint(
            "assessment_id", "skill_id", name=op.f("uq_knowledge_elements_assessment_id_skill_id")
        ),
    )
    with op.batch_alter_table("knowledge_elements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_knowledge_elements_user_id_skill_id",
            ["user_id", "skill_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("knowledge_elements", schema=None) as batch_op:
        batch_op.drop_index("ix_knowledge_elements_user_id_skill_id")

    op.drop_table("knowledge_elements")
    op.drop_table("answers")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_assessments_participation_id_started",
            sqlite_where=sa.text("state = 'STARTED'"),
            postgresql_where=sa.text("state = 'STARTED'"),
        )
        batch_op.drop_index(batch_op.f("ix_assessments_user_id"))
        batch_op.drop_index(batch_op.f("ix_assessments_participation_id"))

    op.drop_table("assessments")
    with op.batch_alter_table("participations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_participations_campaign_id_user_id_live",
            sqlite_where=sa.text("NOT is_improved AND deleted_at IS NULL"),
            postgresql_where=sa.text("NOT is_improved AND deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "uq_participations_campaign_id_learner_id_live",
            sqlite_where=sa.text(
                "NOT is_improved AND deleted_at IS NULL AND learner_id IS NOT NULL"
            ),
            postgresql_where=sa.text(
                "NOT is_improved AND deleted_at IS NULL AND learner_id IS NOT NULL"
            ),
        )
        batch_op.drop_index(batch_op.f("ix_participations_user_id"))
        batch_op.drop_index(batch_op.f("ix_participations_learner_id"))
        batch_op.drop_index("ix_participations_campaign_id_status")

    op.drop_table("participations")
    op.drop_table("campaign_skills")
    op.drop_table("target_profile_tubes")
    op.drop_table("lti_deployments")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_target_profile_id"))
        batch_op.drop_index(batch_op.f("ix_campaigns_owner_id"))
        batch_op.drop_index(batch_op.f("ix_campaigns_organization_id"))

    op.drop_table("campaigns")
    with op.batch_alter_table("target_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_target_profiles_organization_id"))

    op.drop_table("target_profiles")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memberships_user_id"))
        batch_op.drop_index(batch_op.f("ix_memberships_organization_id"))

    op.drop_table("memberships")
    with op.batch_alter_table("lti_platforms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lti_platforms_organization_id"))

    op.drop_table("lti_platforms")
    with op.batch_alter_table("learners", schema=None) as batch_op:
        batch_op.drop_index("ix_learners_organization_id_birthdate")
        batch_op.drop_index(batch_op.f("ix_learners_organization_id"))

    op.drop_table("learners")
    with op.batch_alter_table("authentication_methods", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_authentication_methods_user_id_password",
            sqlite_where=sa.text("provider = 'PASSWORD'"),
            postgresql_where=sa.text("provider = 'PASSWORD'"),
        )
        batch_op.drop_index(batch_op.f("ix_authentication_methods_user_id"))

    op.drop_table("authentication_methods")
    op.drop_table("users")
    op.drop_table("rate_limit_counters")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_organizations_name_without_uai",
            sqlite_where=sa.text("uai IS NULL"),
            postgresql_where=sa.text("uai IS NULL"),
        )

    op.drop_table("organizations")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_jobs_dedupe_key_pending",
            sqlite_where=sa.text("status = 'PENDING'"),
            postgresql_where=sa.text("status = 'PENDING'"),
        )
        batch_op.drop_index("ix_jobs_status_run_at")

    op.drop_table("jobs")
