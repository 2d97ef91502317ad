"""How far a test has gone, as shown to the student

- `assessments.progress`: the percentage the question and checkpoint pages show, stored so that
  it only moves forward (the engine's estimate of the answers still to come may rise after an
  unexpected answer; the student's bar does not go back). 100 only once the test is over. A
  new column with a constant default: no table rewrite on PostgreSQL; tests already over are
  set to 100.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "assessments",
        sa.Column("progress", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.execute("UPDATE assessments SET progress = 100 WHERE state <> 'STARTED'")
    with op.batch_alter_table("assessments") as batch:
        batch.create_check_constraint(
            op.f("ck_assessments_progress_percent"), "progress BETWEEN 0 AND 100"
        )


def downgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.drop_constraint(op.f("ck_assessments_progress_percent"), type_="check")
        batch.drop_column("progress")
