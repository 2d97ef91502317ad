"""Alembic, driven from Python: the only way the schema changes.

The migration scripts ship as the `migrations` package, so `parcours db upgrade` works from an
installed copy as well as from a clone.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

import migrations
from config.db import Database

SCRIPT_LOCATION = Path(migrations.__file__).parent


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["engine"] = database.engine
    return config


@cache
def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return ScriptDirectory.from_config(config).get_current_head()


def upgrade(database: Database, revision: str = "head") -> None:
    command.upgrade(alembic_config(database), revision)


def check(database: Database) -> None:
    """Raise when the models and the migrations disagree (autogenerate would write something)."""
    command.check(alembic_config(database))


def revision(database: Database, message: str) -> None:
    command.revision(alembic_config(database), message=message, autogenerate=True)
