"""LTI learners matched with the school's learner list

- `lti_platforms.match_learners`: the district administrator declares a platform's names
  reliable; a learner's first launch from it is then matched with the school's learner list
  (birth date typed once), so the same student from the ENT and from the LMS is one user. A new
  column with a constant default: no table rewrite on PostgreSQL.
- `lti_pending_matches`: the launches waiting for that birth date (minutes at most).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import config.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "lti_platforms",
        sa.Column("match_learners", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "lti_pending_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("resource_link_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column(
            "identity",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("cookies", sa.Boolean(), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platforms.id"],
            name=op.f("fk_lti_pending_matches_platform_id_lti_platforms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_lti_pending_matches_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resource_link_id"],
            ["lti_resource_links.id"],
            name=op.f("fk_lti_pending_matches_resource_link_id_lti_resource_links"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_lti_pending_matches_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_pending_matches")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_lti_pending_matches_token_hash")),
    )
    with op.batch_alter_table("lti_pending_matches") as batch:
        batch.create_index(
            batch.f("ix_lti_pending_matches_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("lti_pending_matches")
    with op.batch_alter_table("lti_platforms") as batch:
        batch.drop_column("match_learners")
