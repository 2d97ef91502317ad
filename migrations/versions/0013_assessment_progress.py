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


CHECK = "progress BETWEEN 0 AND 100"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Not a batch rebuild: dropping the old table would cascade to every answer.
        op.execute(
            "ALTER TABLE assessments ADD COLUMN progress SMALLINT DEFAULT 0 NOT NULL "
            f"CONSTRAINT ck_assessments_progress_percent CHECK ({CHECK})"
        )
    else:
        op.add_column(
            "assessments",
            sa.Column("progress", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        )
        op.create_check_constraint(op.f("ck_assessments_progress_percent"), "assessments", CHECK)
    op.execute("UPDATE assessments SET progress = 100 WHERE state <> 'STARTED'")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_assessments_progress_percent"), "assessments", type_="check")
    op.drop_column("assessments", "progress")
