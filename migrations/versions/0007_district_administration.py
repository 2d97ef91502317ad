"""district administration: instance administrators and the audit log

- `instance_admins`: the accounts that reach `/admin` (`parcours admins grant|revoke`).
- `audit_entries`: every district-administration action, append-only. The database refuses
  deletions and updates, except the one a deleted actor's account causes (`actor_user_id` set
  to NULL by the foreign key): a trigger on each database.

New tables only: `users` is left as it is (a batch "recreate" on SQLite would drop the table
every other one refers to).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import config.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every column but `actor_user_id`: none of them ever changes.
_FIXED = (
    "id",
    "created_at",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "object_label",
    "request_id",
    "details",
)

_POSTGRESQL_TRIGGER = f"""
CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.actor_user_id IS NULL
     AND ({", ".join(f"NEW.{c}" for c in _FIXED)})
         IS NOT DISTINCT FROM ({", ".join(f"OLD.{c}" for c in _FIXED)}) THEN
    RETURN NEW;  -- the actor's account was deleted: the copied label stays
  END IF;
  RAISE EXCEPTION 'audit_entries is append-only';
END
$$;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();
"""

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "WHEN NEW.actor_user_id IS NOT NULL OR "
    + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _FIXED)
    + " BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
)


def upgrade() -> None:
    op.create_table(
        "instance_admins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("granted_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("granted_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["granted_by_id"],
            ["users.id"],
            name=op.f("fk_instance_admins_granted_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_instance_admins_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_admins")),
        sa.UniqueConstraint("user_id", name=op.f("uq_instance_admins_user_id")),
    )

    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=600), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("object_label", sa.String(length=600), server_default="", nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["actor_user_id"],
            ["users.id"],
            name=op.f("fk_audit_entries_actor_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    op.create_index(op.f("ix_audit_entries_actor_user_id"), "audit_entries", ["actor_user_id"])
    op.create_index("ix_audit_entries_created_at", "audit_entries", ["created_at"])
    op.create_index(
        "ix_audit_entries_object_type_object_id", "audit_entries", ["object_type", "object_id"]
    )
    op.create_index("ix_audit_entries_action", "audit_entries", ["action"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRESQL_TRIGGER)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_entries_append_only ON audit_entries")
        op.execute("DROP FUNCTION audit_entries_append_only()")
    else:
        op.execute("DROP TRIGGER audit_entries_no_update")
        op.execute("DROP TRIGGER audit_entries_no_delete")
    op.drop_index("ix_audit_entries_action", table_name="audit_entries")
    op.drop_index("ix_audit_entries_object_type_object_id", table_name="audit_entries")
    op.drop_index("ix_audit_entries_created_at", table_name="audit_entries")
    op.drop_index(op.f("ix_audit_entries_actor_user_id"), table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_table("instance_admins")
