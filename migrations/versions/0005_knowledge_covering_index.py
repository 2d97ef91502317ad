"""knowledge elements: the per-user, per-skill index covers what the reports read

The exports (progress of tests under way, skill columns) and the analysis read, for many users,
each skill's latest knowledge element: user, skill, date, id and status. With the latest first
in the key (date and id descending) and the status included, PostgreSQL answers from the index
alone (an index-only scan, no sort) instead of visiting millions of table rows; read backwards,
the index still gives each student's knowledge oldest first. Built CONCURRENTLY on PostgreSQL, so that students keep
answering while a large table is indexed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "ix_knowledge_elements_user_id_skill_id"
NEW = "ix_knowledge_elements_user_id_skill_id_latest"


def _swap(create: str, drop: str, columns: list[Any], include: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            # A concurrent build that failed or was cancelled leaves an INVALID index behind:
            # build it again rather than take it for done (and drop the old one).
            valid = (
                op.get_bind()
                .execute(
                    sa.text(
                        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"
                    ),
                    {"name": create},
                )
                .scalar()
            )
            if valid is False:
                op.drop_index(create, "knowledge_elements", postgresql_concurrently=True)
            if valid is not True:
                op.create_index(
                    create,
                    "knowledge_elements",
                    columns,
                    postgresql_include=include,
                    postgresql_concurrently=True,
                )
            # Only once the new index is built (a failed build raises above).
            op.drop_index(drop, "knowledge_elements", postgresql_concurrently=True, if_exists=True)
        return
    with op.batch_alter_table("knowledge_elements") as batch_op:
        batch_op.create_index(create, columns)
        batch_op.drop_index(drop)


def upgrade() -> None:
    _swap(
        NEW,
        OLD,
        ["user_id", "skill_id", sa.column("created_at").desc(), sa.column("id").desc()],
        ["status"],
    )


def downgrade() -> None:
    _swap(OLD, NEW, ["user_id", "skill_id", "created_at"], [])
