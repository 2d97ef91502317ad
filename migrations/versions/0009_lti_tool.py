"""the LTI tool: registrations, deployments mapped to organizations, tool keys, login states,
course placements, grades owed to gradebooks

- `lti_platforms` gains a name, `is_active` (dynamic registrations wait inactive) and the cached
  platform JWKS; it loses `organization_id`: each deployment now names its organization.
- New: `lti_tool_keys`, `lti_login_states` (single-use OIDC state and nonce), `lti_access_tokens`
  (shared OAuth2 tokens), `lti_resource_links` (placements in courses), `lti_learners` (who
  launched a placement, their grade delivery), `lti_events` (recent activity for `/admin`).

The two old tables are read, dropped and created again with their rows (each deployment takes
its platform's organization): a batch "recreate" on SQLite would fire the deployments' ON DELETE
CASCADE when the platforms' table is dropped.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import config.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLATFORM_COLUMNS = (
    "id, issuer, client_id, auth_login_url, auth_token_url, key_set_url, audience,"
    " frame_origins, created_at"
)
_SELECT_PLATFORMS = "SELECT " + _PLATFORM_COLUMNS


def upgrade() -> None:
    bind = op.get_bind()
    platforms = (
        bind.execute(sa.text(_SELECT_PLATFORMS + ", organization_id FROM lti_platforms"))
        .mappings()
        .all()
    )
    deployments = (
        bind.execute(
            sa.text("SELECT id, platform_id, deployment_id, created_at FROM lti_deployments")
        )
        .mappings()
        .all()
    )
    organization_of = {p["id"]: p["organization_id"] for p in platforms}
    op.drop_table("lti_deployments")
    op.drop_table("lti_platforms")

    op.create_table(
        "lti_platforms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), server_default="", nullable=False),
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("auth_login_url", sa.String(length=1024), nullable=False),
        sa.Column("auth_token_url", sa.String(length=1024), nullable=False),
        sa.Column("key_set_url", sa.String(length=1024), nullable=False),
        sa.Column("audience", sa.String(length=1024), nullable=True),
        sa.Column("frame_origins", sa.String(length=2048), server_default="", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column(
            "jwks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("jwks_fetched_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_platforms")),
        sa.UniqueConstraint("issuer", "client_id", name=op.f("uq_lti_platforms_issuer_client_id")),
    )
    op.create_table(
        "lti_tool_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("private_key_pem", sa.Text(), nullable=False),
        sa.Column(
            "public_jwk",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_tool_keys")),
        sa.UniqueConstraint("kid", name=op.f("uq_lti_tool_keys_kid")),
    )
    op.create_table(
        "lti_access_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.String(length=1024), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("expires_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platforms.id"],
            name=op.f("fk_lti_access_tokens_platform_id_lti_platforms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_access_tokens")),
        sa.UniqueConstraint(
            "platform_id", "scopes", name=op.f("uq_lti_access_tokens_platform_id_scopes")
        ),
    )
    op.create_table(
        "lti_deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.String(length=255), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_lti_deployments_organization_id_organizations"),
            ondelete="CASCADE",
        ),
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
    with op.batch_alter_table("lti_deployments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lti_deployments_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "lti_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "LAUNCH",
                "DEEP_LINK",
                "REFUSED",
                "GRADE_FAILED",
                "REGISTERED",
                name="lti_event_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platforms.id"],
            name=op.f("fk_lti_events_platform_id_lti_platforms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_events")),
    )
    with op.batch_alter_table("lti_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lti_events_platform_id_created_at", ["platform_id", "created_at"], unique=False
        )

    op.create_table(
        "lti_login_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platforms.id"],
            name=op.f("fk_lti_login_states_platform_id_lti_platforms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_login_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_lti_login_states_state_hash")),
    )
    with op.batch_alter_table("lti_login_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lti_login_states_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "lti_resource_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("resource_link_id", sa.String(length=255), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=255), server_default="", nullable=False),
        sa.Column("context_id", sa.String(length=255), nullable=True),
        sa.Column("context_title", sa.String(length=255), nullable=True),
        sa.Column("lineitem_url", sa.String(length=1024), nullable=True),
        sa.Column("lineitems_url", sa.String(length=1024), nullable=True),
        sa.Column(
            "ags_scopes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("memberships_url", sa.String(length=1024), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_lti_resource_links_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["lti_deployments.id"],
            name=op.f("fk_lti_resource_links_deployment_id_lti_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_resource_links")),
        sa.UniqueConstraint(
            "deployment_id",
            "resource_link_id",
            name=op.f("uq_lti_resource_links_deployment_id_resource_link_id"),
        ),
    )
    with op.batch_alter_table("lti_resource_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lti_resource_links_campaign_id"), ["campaign_id"], unique=False
        )

    op.create_table(
        "lti_learners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_link_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sub", sa.String(length=255), nullable=False),
        sa.Column("first_launch_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_launch_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "grade_status",
            sa.Enum(
                "NONE",
                "PENDING",
                "SENT",
                "FAILED",
                name="lti_grade_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("grade_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_sent_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_sent_progress", sa.String(length=32), nullable=True),
        sa.Column("last_sent_score", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["resource_link_id"],
            ["lti_resource_links.id"],
            name=op.f("fk_lti_learners_resource_link_id_lti_resource_links"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_lti_learners_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_learners")),
        sa.UniqueConstraint(
            "resource_link_id", "user_id", name=op.f("uq_lti_learners_resource_link_id_user_id")
        ),
    )
    with op.batch_alter_table("lti_learners", schema=None) as batch_op:
        batch_op.create_index("ix_lti_learners_grade_status", ["grade_status"], unique=False)
        batch_op.create_index(batch_op.f("ix_lti_learners_user_id"), ["user_id"], unique=False)

    for platform in platforms:
        bind.execute(
            sa.text(
                f"INSERT INTO lti_platforms ({_PLATFORM_COLUMNS}, updated_at) VALUES (:id, :issuer,"  # noqa: S608
                " :client_id, :auth_login_url, :auth_token_url, :key_set_url, :audience,"
                " :frame_origins, :created_at, :created_at)"
            ),
            {k: v for k, v in platform.items() if k != "organization_id"},
        )
    for deployment in deployments:
        bind.execute(
            sa.text(
                "INSERT INTO lti_deployments (id, platform_id, deployment_id, organization_id,"
                " created_at) VALUES (:id, :platform_id, :deployment_id, :organization_id,"
                " :created_at)"
            ),
            {**deployment, "organization_id": organization_of[deployment["platform_id"]]},
        )
    if bind.dialect.name == "postgresql":  # the rows kept their ids: move the sequences on
        for table in ("lti_platforms", "lti_deployments"):
            bind.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608 - constant
                    f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
            )


def downgrade() -> None:
    """Back to one organization per platform (its first deployment's); platforms without a
    deployment, and everything the new tables held, are lost."""
    bind = op.get_bind()
    platforms = bind.execute(sa.text(_SELECT_PLATFORMS + " FROM lti_platforms")).mappings().all()
    deployments = (
        bind.execute(
            sa.text(
                "SELECT id, platform_id, deployment_id, organization_id, created_at"
                " FROM lti_deployments ORDER BY id"
            )
        )
        .mappings()
        .all()
    )
    organization_of: dict[int, int] = {}
    for deployment in deployments:
        organization_of.setdefault(deployment["platform_id"], deployment["organization_id"])
    for table in (
        "lti_learners",
        "lti_resource_links",
        "lti_login_states",
        "lti_events",
        "lti_deployments",
        "lti_access_tokens",
        "lti_tool_keys",
        "lti_platforms",
    ):
        op.drop_table(table)
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
    for platform in platforms:
        if platform["id"] not in organization_of:
            continue
        bind.execute(
            sa.text(
                f"INSERT INTO lti_platforms ({_PLATFORM_COLUMNS}, organization_id)"  # noqa: S608 - constant
                " VALUES (:id, :issuer, :client_id, :auth_login_url, :auth_token_url,"
                " :key_set_url, :audience, :frame_origins, :created_at, :organization_id)"
            ),
            {**platform, "organization_id": organization_of[platform["id"]]},
        )
    for deployment in deployments:
        bind.execute(
            sa.text(
                "INSERT INTO lti_deployments (id, platform_id, deployment_id, created_at)"
                " VALUES (:id, :platform_id, :deployment_id, :created_at)"
            ),
            {k: deployment[k] for k in ("id", "platform_id", "deployment_id", "created_at")},
        )
