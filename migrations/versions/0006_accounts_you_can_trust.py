"""accounts: proven e-mail addresses, mailed single-use links, server-side sessions

- `users.email_verified_at`: an address counts as proven only once its owner opened a link
  mailed to it. Existing accounts start unproven, except those whose address was proven by an
  accepted invitation (the invitation link was mailed to that very address). No password was
  ever set through a mailed link before this revision, so there is nothing else to carry over.
- `account_tokens`: the links ("confirmez votre adresse", "mot de passe oublié"), hashed.
- `user_sessions`: signed-in browsers, so that signing out (or a password change) ends a session
  for good in every process; replaces `users.sessions_valid_after`. Sessions opened before this
  revision carry no session id and end: everyone signs in again once.

Columns are added and dropped with plain ALTER TABLE (SQLite ≥ 3.35 does both): a batch
"recreate" of `users` would drop the table that every other table refers to.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import config.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("email_verified_at", config.db.UTCDateTime(timezone=True), nullable=True)
    )
    # Proven by an accepted invitation sent to the account's current address.
    op.execute(
        sa.text(
            "UPDATE users SET email_verified_at = ("
            " SELECT min(invitations.accepted_at) FROM invitations"
            " WHERE invitations.accepted_by_id = users.id"
            " AND invitations.email = users.email AND invitations.accepted_at IS NOT NULL)"
            " WHERE users.email IS NOT NULL"
        )
    )
    op.drop_column("users", "sessions_valid_after")

    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum(
                "VERIFY_EMAIL",
                "RESET_PASSWORD",
                name="account_token_purpose",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_account_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )
    op.create_index(op.f("ix_account_tokens_user_id"), "account_tokens", ["user_id"])

    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", config.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", config.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "password_change_required", sa.Boolean(), server_default=sa.false(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])
    op.create_index("ix_user_sessions_expires_at", "user_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_user_sessions_expires_at", table_name="user_sessions")
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_index(op.f("ix_account_tokens_user_id"), table_name="account_tokens")
    op.drop_table("account_tokens")
    op.add_column(
        "users",
        sa.Column("sessions_valid_after", config.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.drop_column("users", "email_verified_at")
