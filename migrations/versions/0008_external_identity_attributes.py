"""external identities remember what their connector read

- `authentication_methods.attributes`: the names, e-mail, roles, classes… an LMS or identity
  provider sent at the last sign-in (JSONB on PostgreSQL, JSON text on SQLite); NULL for
  passwords. A new nullable column: no table rewrite on either database.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "authentication_methods",
        sa.Column(
            "attributes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("authentication_methods") as batch:
        batch.drop_column("attributes")
