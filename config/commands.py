"""Helpers shared by every package's commands: the runtime (settings, database) and output."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, NoReturn

import click

from config.db import Database, check_connection
from config.settings import Settings


class Runtime:
    """What commands share: settings and database, built on first use."""

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env()

    @cached_property
    def database(self) -> Database:
        return Database(self.settings)

    def connected_database(self) -> Database:
        check_connection(self.database)
        return self.database


pass_runtime = click.make_pass_decorator(Runtime, ensure=True)


def one_line(message: str) -> str:
    """The first meaningful line of an error message."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
