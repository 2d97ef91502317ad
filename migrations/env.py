"""Alembic environment: runs against the engine handed over by config.migrations."""

from __future__ import annotations

from alembic import context

import campaigns.shared.models  # noqa: F401 - registers the tables
import config.jobs
import config.ratelimit  # noqa: F401
import lti_tool.models  # noqa: F401
import sso.models  # noqa: F401
from config.db import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `parcours db upgrade`")
run_migrations_online()
