"""the SAML connector: identity providers, our SP keys, requests used once, assertions seen

- `saml_identity_providers`: slug, entity id, SSO URL, signing certificates, the last valid
  metadata and where to fetch it again, attribute mapping (gar or generic), IdP-initiated login
  (off by default), active; `saml_idp_organizations`: where each may sign users into.
- `saml_sp_keys`: our keys and certificates (a rollover publishes the next key ahead).
- `saml_requests`: AuthnRequest ids, used once, with the wanted destination kept server-side.
- `saml_seen_assertions`: accepted assertion ids, refused again until they expire.
- `saml_events`: recent logins, refusals and metadata refreshes for `/admin`.
- `saml_pending_matches`: students vouched for by an IdP, waiting to be matched with the learner
  list (no account until then).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import config.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saml_identity_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), server_default="", nullable=False),
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.Column("sso_url", sa.String(length=1024), nullable=False),
        sa.Column(
            "certificates",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("metadata_xml", sa.Text(), nullable=False),
        sa.Column("metadata_url", sa.String(length=1024), nullable=True),
        sa.Column("metadata_fetched_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("metadata_valid_until", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("metadata_error", sa.Text(), nullable=True),
        sa.Column(
            "mapping",
            sa.Enum(
                "gar",
                "generic",
                name="saml_attribute_mapping",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("allow_idp_initiated", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_identity_providers")),
        sa.UniqueConstraint("slug", name=op.f("uq_saml_identity_providers_slug")),
    )
    op.create_table(
        "saml_sp_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("private_key_pem", sa.Text(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_sp_keys")),
    )
    op.create_table(
        "saml_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idp_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "LOGIN",
                "REFUSED",
                "METADATA",
                name="saml_event_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["idp_id"],
            ["saml_identity_providers.id"],
            name=op.f("fk_saml_events_idp_id_saml_identity_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_events")),
    )
    with op.batch_alter_table("saml_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_saml_events_idp_id_created_at", ["idp_id", "created_at"], unique=False
        )

    op.create_table(
        "saml_idp_organizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idp_id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["idp_id"],
            ["saml_identity_providers.id"],
            name=op.f("fk_saml_idp_organizations_idp_id_saml_identity_providers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_saml_idp_organizations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_idp_organizations")),
        sa.UniqueConstraint(
            "idp_id",
            "organization_id",
            name=op.f("uq_saml_idp_organizations_idp_id_organization_id"),
        ),
    )
    with op.batch_alter_table("saml_idp_organizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_idp_organizations_organization_id"),
            ["organization_id"],
            unique=False,
        )

    op.create_table(
        "saml_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("idp_id", sa.Integer(), nullable=False),
        sa.Column("next_path", sa.String(length=512), nullable=True),
        sa.Column("purpose", sa.String(length=16), server_default="login", nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["idp_id"],
            ["saml_identity_providers.id"],
            name=op.f("fk_saml_requests_idp_id_saml_identity_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_requests")),
        sa.UniqueConstraint("request_id", name=op.f("uq_saml_requests_request_id")),
    )
    with op.batch_alter_table("saml_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_requests_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "saml_seen_assertions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idp_id", sa.Integer(), nullable=False),
        sa.Column("assertion_id", sa.String(length=256), nullable=False),
        sa.Column("expires_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["idp_id"],
            ["saml_identity_providers.id"],
            name=op.f("fk_saml_seen_assertions_idp_id_saml_identity_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_seen_assertions")),
        sa.UniqueConstraint(
            "idp_id", "assertion_id", name=op.f("uq_saml_seen_assertions_idp_id_assertion_id")
        ),
    )
    with op.batch_alter_table("saml_seen_assertions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_seen_assertions_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "saml_pending_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("idp_id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column(
            "identity",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("next_path", sa.String(length=512), nullable=True),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["idp_id"],
            ["saml_identity_providers.id"],
            name=op.f("fk_saml_pending_matches_idp_id_saml_identity_providers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_saml_pending_matches_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_pending_matches")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_saml_pending_matches_token_hash")),
    )
    with op.batch_alter_table("saml_pending_matches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_pending_matches_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("saml_pending_matches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saml_pending_matches_expires_at"))

    op.drop_table("saml_pending_matches")
    with op.batch_alter_table("saml_seen_assertions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saml_seen_assertions_expires_at"))

    op.drop_table("saml_seen_assertions")
    with op.batch_alter_table("saml_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saml_requests_expires_at"))

    op.drop_table("saml_requests")
    with op.batch_alter_table("saml_idp_organizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saml_idp_organizations_organization_id"))

    op.drop_table("saml_idp_organizations")
    with op.batch_alter_table("saml_events", schema=None) as batch_op:
        batch_op.drop_index("ix_saml_events_idp_id_created_at")

    op.drop_table("saml_events")
    op.drop_table("saml_sp_keys")
    op.drop_table("saml_identity_providers")
