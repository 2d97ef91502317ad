"""an OIDC login remembers the platform storage it was offered

- `lti_login_states.storage_target`: the `lti_storage_target` frame a platform named at login
  (the state and nonce were also put there, by postMessage); a launch whose browser dropped our
  state cookie is then checked against that storage. A new nullable column: no table rewrite.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("lti_login_states", sa.Column("storage_target", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lti_login_states") as batch:
        batch.drop_column("storage_target")
