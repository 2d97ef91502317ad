"""The migrations build exactly the schema the models describe — including what `alembic check`
does not compare: CHECK constraints and the conditions of partial unique indexes."""

import os
import re

import pytest
from sqlalchemy import inspect, text

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


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="concurrent index builds are PostgreSQL's"
)
def test_an_invalid_knowledge_index_left_by_a_failed_build_is_built_again(scratch_databases):
    """A cancelled CREATE INDEX CONCURRENTLY leaves an INVALID index: migration 0005 run again
    must rebuild it, and drop the old index only then."""
    from config.migrations import upgrade

    new, old = (
        "ix_knowledge_elements_user_id_skill_id_latest",
        "ix_knowledge_elements_user_id_skill_id",
    )
    database = Database(Settings(database_url=scratch_databases.new("invalid_index")))
    try:
        upgrade(database, "0004")
        with database.engine.begin() as connection:
            connection.execute(text(f"CREATE INDEX {new} ON knowledge_elements (user_id)"))
            connection.execute(
                text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(:n)"),
                {"n": new},
            )
        upgrade(database)
        with database.engine.connect() as connection:
            valid = connection.execute(
                text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:n)"),
                {"n": new},
            ).scalar()
            gone = connection.execute(text("SELECT to_regclass(:n)"), {"n": old}).scalar()
        assert valid is True and gone is None
        indexes = {i["name"]: i for i in inspect(database.engine).get_indexes("knowledge_elements")}
        assert indexes[new]["column_names"] == ["user_id", "skill_id", "created_at", "id"]
    finally:
        database.dispose()
