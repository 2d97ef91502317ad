"""Shared fixtures: a real database migrated once per run, each test in a rolled-back transaction.

The suite runs on SQLite by default and on PostgreSQL when TEST_DATABASE_URL names a server
database: it then creates a throwaway database beside it (dropped at the end), so runs never
touch the named database's data and can run side by side.

Tests never reach the network: any socket connection to anything but this machine fails.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from config.app import create_app
from config.db import Database
from config.migrations import upgrade
from config.settings import Settings, parse_database_url

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


# -- no network ---------------------------------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address: object) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX
        return True
    host = str(address[0]) if isinstance(address, tuple) else ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise ConnectionRefusedError(f"tests may not reach the network (tried {address!r})")
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise ConnectionRefusedError(f"tests may not reach the network (tried {address!r})")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


# -- databases ----------------------------------------------------------------------------------


class ScratchDatabases:
    """Creates empty databases of the kind under test (SQLite files or PostgreSQL databases)."""

    def __init__(self, server_url: str | None, directory: Path) -> None:
        self.server_url = parse_database_url(server_url) if server_url else None
        # libpq opens its own sockets, out of reach of the guard above: check the host here.
        if self.server_url is not None and not _is_local((self.server_url.host or "", 0)):
            raise pytest.UsageError("TEST_DATABASE_URL must point at this machine (127.0.0.1)")
        self.directory = directory
        self.created: list[str] = []

    @property
    def kind(self) -> str:
        return "postgresql" if self.server_url else "sqlite"

    def new(self, label: str = "db") -> str:
        name = f"parcours_test_{label}_{os.getpid()}_{secrets.token_hex(3)}"
        if self.server_url is None:
            return f"sqlite:///{self.directory / name}.db"
        with self._admin() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.server_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self.server_url is None:
            return
        with self._admin() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def _admin(self) -> Connection:
        assert self.server_url is not None
        engine = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        return engine.connect()


@pytest.fixture(scope="session")
def scratch_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchDatabases]:
    databases = ScratchDatabases(
        os.environ.get("TEST_DATABASE_URL") or None, tmp_path_factory.mktemp("databases")
    )
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def settings(scratch_databases: ScratchDatabases) -> Settings:
    return Settings(
        database_url=scratch_databases.new("suite"),
        secret_key=TEST_SECRET,
        public_url="http://127.0.0.1:5000",
        env="development",
        testing=True,
    )


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    upgrade(database)  # the real migrations, not create_all: what production runs
    yield database
    database.dispose()


@pytest.fixture
def connection(database: Database) -> Iterator[Connection]:
    with database.engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


class BoundDatabase(Database):
    """The process database, with sessions that live inside one test's transaction: commits in
    the code under test only release savepoints, and everything is rolled back at the end."""

    def __init__(self, database: Database, connection: Connection) -> None:
        self.url = database.url
        self.engine = database.engine
        self.sessionmaker = sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )

    # Pages that start by reading go on in the test's transaction (its connection cannot
    # switch to autocommit); tests/test_answer_path.py runs them on a database of their own.
    read_options: dict = {}  # noqa: RUF012 - replaces the parent's property

    def read_only_session(self) -> Session:
        """On the test's connection too (it sees the test's data); closing it keeps the test's
        transaction."""
        return self.session()


@pytest.fixture
def bound_database(database: Database, connection: Connection) -> BoundDatabase:
    return BoundDatabase(database, connection)


@pytest.fixture
def db_session(bound_database: BoundDatabase) -> Iterator[Session]:
    session = bound_database.session()
    yield session
    session.close()


@pytest.fixture
def app(settings: Settings, bound_database: BoundDatabase) -> Flask:
    return create_app(settings, database=bound_database)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def recorded_statements(bind) -> Iterator[list[str]]:
    """The SQL statements run on `bind` (an engine or a connection) inside the block."""
    found: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        found.append(statement)

    event.listen(bind, "before_cursor_execute", record)
    try:
        yield found
    finally:
        event.remove(bind, "before_cursor_execute", record)


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form at `path`, as a browser would read it."""
    page = client.get(path).get_data(as_text=True)
    match = _CSRF.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture(autouse=True)
def _forget_campaign_contents():
    """Campaign contents are cached per process by campaign id; a rolled-back SQLite test gives
    the same id to the next test's campaign, so each test starts with an empty cache."""
    from campaigns.journey import services as journey

    journey._profiles.clear()
    yield
    journey._profiles.clear()


@pytest.fixture(autouse=True)
def _rate_limit_windows_stand_still(monkeypatch):
    """Rate limits count per fixed window: a test that crossed a window boundary would see its
    count restart. Within a test, the rate limiter's clock stands still."""
    import config.ratelimit
    from config.db import utcnow

    started = utcnow()
    monkeypatch.setattr(config.ratelimit, "utcnow", lambda: started)
