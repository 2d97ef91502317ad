"""The migrations build exactly the schema the models describe — including what `alembic check`
does not compare: CHECK constraints and the conditions of partial unique indexes."""

import re

from sqlalchemy import inspect

import campaigns.models  # noqa: F401 - registers the tables
import config.jobs
import config.ratelimit  # noqa: F401
import lti_tool.models  # noqa: F401
from config.db import Base, Database
from config.settings import Settings


def _normalized(sql: str | None) -> str:
    return re.sub(r"[\s()\"]", "", (sql or "").lower())


def _where(index: dict) -> str:
    options = index.get("dialect_options", {})
    for key in ("postgresql_where", "sqlite_where"):
        if options.get(key) is not None:
            return str(options[key])
    return ""


def _describe(engine) -> dict[str, object]:
    inspector = inspect(engine)
    schema: dict[str, object] = {}
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        schema[f"{table}.checks"] = sorted(
            (c["name"], _normalized(c["sqltext"])) for c in inspector.get_check_constraints(table)
        )
        schema[f"{table}.indexes"] = sorted(
            (
                i["name"],
                tuple(i["column_names"]),
                tuple(i.get("dialect_options", {}).get("postgresql_include") or ()),
                tuple(sorted((i.get("column_sorting") or {}).items())),
                bool(i["unique"]),
                _normalized(_where(i)),
            )
            for i in inspector.get_indexes(table)
        )
        schema[f"{table}.uniques"] = sorted(
            (u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
        )
        schema[f"{table}.columns"] = sorted(
            (c["name"], bool(c["nullable"])) for c in inspector.get_columns(table)
        )
    return schema


def test_migrations_match_the_models(database, scratch_databases):
    reference = Database(Settings(database_url=scratch_databases.new("models")))
    try:
        Base.metadata.create_all(reference.engine)
        from_models = _describe(reference.engine)
    finally:
        reference.dispose()
    from_migrations = _describe(database.engine)
    assert from_migrations.keys() == from_models.keys()
    for key in from_models:
        assert from_migrations[key] == from_models[key], key


def test_every_migration_downgrades_and_upgrades_again(scratch_databases):
    from alembic import command

    from config.migrations import alembic_config, upgrade

    database = Database(Settings(database_url=scratch_databases.new("roundtrip")))
    try:
        upgrade(database)
        command.downgrade(alembic_config(database), "base")
        assert inspect(database.engine).get_table_names() == ["alembic_version"]
        upgrade(database)
        assert "content_releases" in inspect(database.engine).get_table_names()
    finally:
        database.dispose()
