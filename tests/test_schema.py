"""The migrations build exactly the schema the models describe — including what `alembic check`
does not compare: CHECK constraints and the conditions of partial unique indexes."""

import os
import re

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

import campaigns.shared.models  # noqa: F401 - registers the tables
import config.jobs
import config.ratelimit  # noqa: F401
import lti_tool.models  # noqa: F401
import sso.models  # noqa: F401
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


def test_migration_0006_proves_only_addresses_proven_by_an_accepted_invitation(scratch_databases):
    """Existing accounts start unproven, except those that accepted an invitation sent to their
    current address; their rows (and everything that refers to them) are kept."""
    from config.migrations import upgrade

    database = Database(Settings(database_url=scratch_databases.new("accounts_0006")))
    try:
        upgrade(database, "0005")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, first_name, last_name, email, locale, created_at,"
                    " updated_at) VALUES"
                    " (1, 'A', 'Invitée', 'a@example.org', 'fr', :now, :now),"
                    " (2, 'B', 'Inscrite', 'b@example.org', 'fr', :now, :now),"
                    " (3, 'C', 'Changée', 'c-new@example.org', 'fr', :now, :now),"
                    " (4, 'D', 'Identifiant', NULL, 'fr', :now, :now)"
                ),
                {"now": "2026-11-01 10:00:00+00:00"},
            )
            connection.execute(
                text(
                    "INSERT INTO authentication_methods (user_id, provider, password_hash,"
                    " must_change_password, created_at) VALUES (2, 'PASSWORD', 'x', false, :now)"
                ),
                {"now": "2026-11-01 10:00:00+00:00"},
            )
            connection.execute(
                text(
                    "INSERT INTO organizations (id, name, type, uses_gar, created_at)"
                    " VALUES (1, 'École', 'PRO', false, :now)"
                ),
                {"now": "2026-11-01 10:00:00+00:00"},
            )
            connection.execute(
                text(
                    "INSERT INTO invitations (organization_id, email, role, token_hash,"
                    " created_at, expires_at, accepted_at, accepted_by_id) VALUES"
                    " (1, 'a@example.org', 'MEMBER', 'h1', :now, :later, :accepted, 1),"
                    " (1, 'c-old@example.org', 'MEMBER', 'h3', :now, :later, :accepted, 3),"
                    " (1, 'b@example.org', 'MEMBER', 'h2', :now, :later, NULL, NULL)"
                ),
                {
                    "now": "2026-11-01 10:00:00+00:00",
                    "later": "2026-11-08 10:00:00+00:00",
                    "accepted": "2026-11-02 09:00:00+00:00",
                },
            )
        upgrade(database)
        with database.engine.connect() as connection:
            proven = dict(
                connection.execute(
                    text("SELECT id, email_verified_at IS NOT NULL FROM users ORDER BY id")
                ).all()
            )
            methods = connection.execute(text("SELECT count(*) FROM authentication_methods"))
            assert methods.scalar() == 1
        assert proven == {1: True, 2: False, 3: False, 4: False}
    finally:
        database.dispose()


def test_migration_0013_keeps_every_answer_and_sets_the_progress_of_finished_tests(
    scratch_databases,
):
    from alembic import command

    from config.migrations import alembic_config, upgrade

    database = Database(Settings(database_url=scratch_databases.new("progress")))
    try:
        upgrade(database, "0012")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, first_name, last_name, created_at, updated_at) "
                    "VALUES (1, 'Léa', 'Martin', :now, :now)"
                ),
                {"now": "2026-12-01 08:00:00+00:00"},
            )
            for assessment_id, state in ((1, "STARTED"), (2, "COMPLETED")):
                connection.execute(
                    text(
                        "INSERT INTO assessments (id, user_id, type, state, is_improving, "
                        "created_at, updated_at) VALUES (:id, 1, 'PREVIEW', :state, false, "
                        ":now, :now)"
                    ),
                    {"id": assessment_id, "state": state, "now": "2026-12-01 08:00:00+00:00"},
                )
                connection.execute(
                    text(
                        "INSERT INTO answers (assessment_id, challenge_id, value, result, "
                        "time_spent_seconds, created_at) VALUES (:id, 'ch-1', '1', 'ok', 3, :now)"
                    ),
                    {"id": assessment_id, "now": "2026-12-01 08:00:00+00:00"},
                )
        upgrade(database)
        with database.engine.connect() as connection:
            progress = connection.execute(
                text("SELECT id, progress FROM assessments ORDER BY id")
            ).all()
            answers = connection.execute(text("SELECT count(*) FROM answers")).scalar()
        assert [tuple(row) for row in progress] == [(1, 0), (2, 100)] and answers == 2
        with pytest.raises(IntegrityError), database.engine.begin() as connection:
            connection.execute(text("UPDATE assessments SET progress = 101 WHERE id = 1"))
        command.downgrade(alembic_config(database), "0012")
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM answers")).scalar() == 2
        assert "progress" not in {
            c["name"] for c in inspect(database.engine).get_columns("assessments")
        }
    finally:
        database.dispose()
