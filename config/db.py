"""Database plumbing: the declarative base, portable column types, the engine and sessions.

One `Database` per process holds the engine and the session factory. A web request gets one
session (`get_session()`), created on first use and closed when the request ends; views commit,
services only flush. Work that outlives the view (a streamed export) opens a session of its own
(`Database.read_only_session()`) and closes it itself. Nothing here connects at import or at app
creation.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import current_app, g
from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    Enum,
    MetaData,
    Table,
    bindparam,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, CursorResult
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, sessionmaker
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeDecorator

from config.settings import ConfigError, Settings, parse_database_url, sqlite_file

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every database.

    PostgreSQL keeps the zone (timestamptz); SQLite keeps none, so values are normalised to UTC
    on the way in and marked UTC on the way out. Naive datetimes are refused: they are bugs.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# Execution option of connections that only read: on SQLite their transactions begin deferred.
READ_ONLY = "parcours_read_only"
# Execution option of a request's reads on PostgreSQL: each statement its own transaction.
AUTOCOMMIT_READS = "parcours_autocommit_reads"


class Database:
    """The engine and session factory of one process."""

    def __init__(self, settings: Settings, *, pool_timeout: float = 30) -> None:
        self.url: URL = parse_database_url(settings.database_url)
        self.engine: Engine = build_engine(
            self.url, pool_size=settings.database_pool_size, pool_timeout=pool_timeout
        )
        self.sessionmaker: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self.sessionmaker()

    @property
    def read_options(self) -> dict[str, Any]:
        """Execution options of a request's connection for pages that start by reading
        (`read_connection`): on PostgreSQL autocommit, each statement its own transaction (no
        BEGIN, no ROLLBACK: one round trip per statement; see `_autocommit_reads`); on SQLite a
        deferred transaction, which takes no write lock."""
        if self.engine.dialect.name == "postgresql":
            return {AUTOCOMMIT_READS: True}
        return {READ_ONLY: True}

    def read_only_session(self) -> Session:
        """A session for long work that only reads (a streamed export), not tied to a request:
        the caller closes it. Its connections carry `READ_ONLY`: on SQLite its transactions take
        no write lock, so writers keep going while it reads (WAL). It must not write."""
        return self.sessionmaker(bind=self.engine.execution_options(**{READ_ONLY: True}))

    def dispose(self) -> None:
        self.engine.dispose()


def build_engine(url: URL, *, pool_size: int = 5, pool_timeout: float = 30) -> Engine:
    """The engine; `pool_timeout` is how long a checkout waits for a pooled connection (tests
    lower it to fail fast when connections leak)."""
    if url.drivername.startswith("sqlite"):
        path = sqlite_file(url)
        pooled: dict[str, Any] = {}
        if path is not None:
            pooled["pool_timeout"] = pool_timeout  # a file: a QueuePool (memory: one connection)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigError(
                    f"DATABASE_URL: cannot create the folder of {path}: {error.strerror}"
                ) from None
        engine = create_engine(url, connect_args={"timeout": 15}, hide_parameters=True, **pooled)
        _make_sqlite_transactional(engine)
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "parcours"},
        # Errors quote statements, never their values (addresses, external ids, answers).
        hide_parameters=True,
    )
    _ping_when_idle(engine)
    _autocommit_reads(engine)
    return engine


def _autocommit_reads(engine: Engine) -> None:
    """Connections given `AUTOCOMMIT_READS` switch psycopg2 to autocommit, and back when they
    return to the pool. Not SQLAlchemy's `isolation_level="AUTOCOMMIT"`: it sets psycopg2's
    isolation level, then resets it to READ COMMITTED at check-in, after which the next switch
    to autocommit sends `SET default_transaction_isolation TO DEFAULT`, a round trip on every
    page that reads. psycopg2's `autocommit` flag alone sends nothing while the connection has
    the server's default isolation level; a connection given another one (Alembic's autocommit
    blocks leave READ COMMITTED set) is put back to the default once. SQLAlchemy still ends the
    connection's transaction as usual: psycopg2 ignores a commit or rollback in autocommit."""

    @event.listens_for(engine, "set_connection_execution_options")
    def _switch(connection: Connection, options: dict[str, Any]) -> None:
        if options.get(AUTOCOMMIT_READS):
            dbapi_connection: Any = connection.connection.dbapi_connection
            if dbapi_connection.isolation_level is not None:
                dbapi_connection.set_session(isolation_level="DEFAULT")
            dbapi_connection.autocommit = True

    @event.listens_for(engine, "checkin")
    def _switch_back(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None and dbapi_connection.autocommit:
            dbapi_connection.autocommit = False


PING_WHEN_IDLE_FOR = 10.0  # seconds


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle for a while (a database
    restart, a firewall dropping quiet connections): a dead one is replaced, the request never
    sees it. A busy connection is not pinged (a round trip on every request, which
    `pool_pre_ping` would cost); if the database drops it all the same, the first read of the
    request is tried once more on a new connection (`retry_if_disconnected`)."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["parcours.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("parcours.idle_since")
        if since is None or time.monotonic() - since < PING_WHEN_IDLE_FOR:
            return
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # the ping opens no transaction
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.autocommit = autocommit
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("the pooled connection is gone") from error  # replaced


T = TypeVar("T")


def retry_if_disconnected(read: Callable[[], T]) -> T:
    """`read()`, the first statement of a request; once more on a new connection when the
    database dropped the pooled one (nothing was written yet: trying again is safe)."""
    try:
        return read()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        get_session().rollback()
        return read()


def _make_sqlite_transactional(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, run transactions.

    Python's sqlite3 module opens transactions lazily and breaks SAVEPOINT and transactional DDL;
    this is SQLAlchemy's documented remedy. Transactions take the write lock when they begin
    (BEGIN IMMEDIATE): a transaction that read first and wrote later could otherwise fail at once
    with "database is locked" when another thread wrote in between; this way it waits its turn.
    SQLite serialises writers anyway; PostgreSQL is the database for concurrency. Connections
    marked `READ_ONLY` begin deferred (plain BEGIN): a long read then holds no lock writers
    wait for, only its snapshot of the WAL. Foreign keys are off by default in SQLite: turn
    them on.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 15000")
        if _is_file(engine.url):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _is_file(url: URL) -> bool:
    return sqlite_file(url) is not None


def execute_dml(session: Session, statement: Executable) -> CursorResult[Any]:
    """Run an UPDATE or DELETE and return its cursor result (for `rowcount`)."""
    return cast(CursorResult[Any], session.execute(statement))


def table_of(model: type[Base]) -> Table:
    """The table of a mapped class, for plain Core statements built once."""
    return cast(Table, model.__table__)


ModelT = TypeVar("ModelT", bound=Base)


def insert_row(session: Session, model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """Insert one row with a statement built once per table and column set, and hold it in the
    session as the object it is, without reading it back (no unit of work: the hot paths). A
    column left out takes its scalar default, or NULL; one whose value only the database knows
    must be given."""
    defaults = _defaults(model, frozenset(values))  # refuses before anything is written
    new_id = session.execute(_insert_row(model, tuple(values)), values).scalar_one()
    row = _held(model, new_id, defaults | values)
    session.add(row)
    return row


def written(model: type[ModelT], row_id: int, values: dict[str, Any]) -> ModelT:
    """The object of a row just inserted with `values` by a Core statement, to `session.add`
    (it is not read back: a column left out holds its scalar default or NULL). Like any object
    the session holds, it goes stale if the transaction rolls back: a request that rolls back
    starts over with fresh reads, as every request does."""
    return _held(model, row_id, _defaults(model, frozenset(values)) | values)


def loaded(session: Session, model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """The object of a row read by a plain Core statement (`values` holds its id), held by
    `session` as if the ORM had loaded it: columns left out load when first used. The object
    the session holds already, if it holds one."""
    held = session.identity_map.get(session.identity_key(model, values["id"]))
    if held is not None:
        return cast(ModelT, held)
    row = model(**values)
    make_transient_to_detached(row)
    session.add(row)
    return row


def _held(model: type[ModelT], row_id: int, values: dict[str, Any]) -> ModelT:
    row = model(id=row_id, **values)
    make_transient_to_detached(row)
    return row


@functools.lru_cache(maxsize=64)
def _insert_row(model: type[Base], columns: tuple[str, ...]) -> Any:
    table = table_of(model)
    return (
        table.insert()
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
        .returning(table.c.id)
    )


@functools.lru_cache(maxsize=64)
def _defaults(model: type[Base], given: frozenset[str]) -> dict[str, Any]:
    defaults = {}
    for column in table_of(model).columns:
        if column.name == "id" or column.name in given:
            continue
        if column.default is not None:
            if not column.default.is_scalar:  # computed per row (a callable, a sequence)
                raise ValueError(f"insert_row: {model.__name__}.{column.name} must be given")
            defaults[column.name] = column.default.arg  # type: ignore[attr-defined]
        elif column.nullable and column.server_default is None:
            defaults[column.name] = None
        else:
            raise ValueError(f"insert_row: {model.__name__}.{column.name} must be given")
    return defaults


def expire_loaded(session: Session, model: type[Base], row_id: int) -> None:
    """After a plain Core write to a row: the session's object of that row, when it holds one,
    reads it again when next used (the ORM did not see the write)."""
    loaded = session.identity_map.get(session.identity_key(model, row_id))
    if loaded is not None:
        session.expire(loaded)


def upsert(dialect: str, model: type[Base] | Table) -> Any:
    """An INSERT of `model` (a mapped class, or a table for a plain Core statement) that takes `on_conflict_do_nothing` / `on_conflict_do_update` (the
    dialect's own construct: PostgreSQL and SQLite both speak ON CONFLICT)."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def insert_new(
    bind: Session | Connection, model: type[Base], unique: Sequence[str], values: dict[str, Any]
) -> int | None:
    """Insert one row unless a row with the same `unique` columns exists, in one statement (no
    savepoint): the new row's id, or None when it already existed. `bind`: a session, or the
    connection of one (plain Core: the hot paths)."""
    dialect = bind.dialect if isinstance(bind, Connection) else bind.get_bind().dialect
    statement = _insert_new(dialect.name, model, tuple(unique), tuple(values))
    new_id: int | None = bind.execute(statement, values).scalar()
    return new_id


@functools.lru_cache(maxsize=64)
def _insert_new(
    dialect: str, model: type[Base], unique: tuple[str, ...], columns: tuple[str, ...]
) -> Any:
    """`insert_new`'s statement, built once per dialect, table and set of columns."""
    table = table_of(model)
    return (
        upsert(dialect, table)
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
        .on_conflict_do_nothing(index_elements=list(unique))
        .returning(table.c.id)
    )


class Prepared:
    """A statement of a hot path that PostgreSQL parses and plans once per connection, not on
    every execution (PREPARE on the connection's first use of it, then EXECUTE). Planning is
    most of the database's work for a join of a few rows by their keys: a 6-table read costs
    0.8 ms of server CPU each time, 0.12 ms prepared. Other databases run the statement as it
    is, or `elsewhere` when given (a dialect's own construct). `rows` gives the rows it returns
    as plain tuples, each value as the statement's column type reads it (none for a write
    without RETURNING); `name` must be unique.

    On PostgreSQL the EXECUTE goes straight to the psycopg2 cursor of the connection, with the
    bind and result processors of the statement's own types looked up once: SQLAlchemy's
    execution context (compiled cache, parameter and result objects, events) costs about a
    third of the CPU of such a read on the client. Errors still go through SQLAlchemy's
    handling (wrapped, `handle_error` fired, a dropped connection invalidated), so
    `retry_if_disconnected` and the pool behave as for any other statement; statement events
    (`before_cursor_execute`) do not see these reads."""

    def __init__(self, name: str, statement: Any, *, elsewhere: Any = None) -> None:
        self.name = name
        self.statement = statement
        self.elsewhere = statement if elsewhere is None else elsewhere
        self._compiled: _Compiled | None = None
        # (position, result processor) of the columns that have one, from the first execution
        self._results: list[tuple[int, Any]] | None = None

    def rows(self, connection: Connection, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        if connection.dialect.name != "postgresql":
            result = connection.execute(self.elsewhere, parameters)
            return [tuple(row) for row in result] if result.returns_rows else []
        compiled = self._compiled or self._compile(connection.dialect)
        values = [
            parameters[name] if name in parameters else compiled.fixed[name]
            for name in compiled.order
        ]
        for i, process in compiled.binds:
            values[i] = process(values[i])
        pooled = connection.connection
        prepared: set[str] = pooled.info.setdefault("parcours.prepared", set())
        cursor = pooled.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if self.name not in prepared:
                cursor.execute(compiled.prepare)
                prepared.add(self.name)
            cursor.execute(compiled.execute, values)
            if cursor.description is None:  # a write that returns nothing
                return []
            fetched = cast(list[tuple[Any, ...]], cursor.fetchall())
            results = self._results
            if results is None:
                results = self._result_processors(connection, cursor.description)
        except connection.dialect.loaded_dbapi.Error as error:
            # SQLAlchemy's own handling of a failed statement (private, stable since 1.x)
            connection._handle_dbapi_exception(error, compiled.execute, values, cursor, None)
        finally:
            cursor.close()
        if not results:
            return fetched
        rows = []
        for row in fetched:
            read = list(row)
            for i, process in results:
                read[i] = process(read[i])
            rows.append(tuple(read))
        return rows

    def _compile(self, dialect: Any) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        computed = [*compiled.insert_prefetch, *compiled.update_prefetch]
        if computed:  # SQLAlchemy computes those per execution; EXECUTE would leave them NULL
            names = ", ".join(column.name for column in computed)
            raise ValueError(f"Prepared {self.name}: give a value for {names} (a Python default)")
        order: list[str] = []

        def numbered(match: re.Match[str]) -> str:
            if match.group(1) not in order:
                order.append(match.group(1))
            return f"${order.index(match.group(1)) + 1}"

        body = re.sub(r"%\(([A-Za-z0-9_]+)\)s", numbered, compiled.string)
        self._compiled = _Compiled(
            prepare=f"PREPARE {self.name} AS {body}",
            execute=f"EXECUTE {self.name}({', '.join('%s' for _ in order)})",
            order=tuple(order),
            fixed={
                k: v
                for k, v in compiled.params.items()
                if k in order and not compiled.binds[k].required
            },
            binds=tuple(
                (i, process)
                for i, name in enumerate(order)
                if (process := compiled.binds[name].type.bind_processor(dialect)) is not None
            ),
        )
        return self._compiled

    def _result_processors(self, connection: Connection, description: Any) -> list[tuple[int, Any]]:
        """The columns' result processors, for the types the database gave them (the first
        execution's: a prepared statement's result types do not change)."""
        columns = list(self.statement.exported_columns)
        processors = (
            column.type.result_processor(connection.dialect, described[1])
            for column, described in zip(columns, description, strict=True)
        )
        self._results = [(i, p) for i, p in enumerate(processors) if p is not None]
        return self._results


@dataclass(frozen=True)
class _Compiled:
    prepare: str  # PREPARE name AS …, parameters numbered $1, $2… in `order`
    execute: str  # EXECUTE name(%s, %s…)
    order: tuple[str, ...]  # the parameters' names
    fixed: dict[str, Any]  # values the statement holds itself (literals bound as parameters)
    binds: tuple[tuple[int, Any], ...]  # (position, bind processor) of parameters that have one


def check_connection(database: Database) -> None:
    """Raise ConfigError with a one-line reason when the database cannot be reached."""
    try:
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as error:
        raise ConfigError(
            f"DATABASE_URL: cannot reach {describe(database.url)}: {_first_line(error)}"
        ) from None


def describe(url: URL) -> str:
    """The URL without its password, for messages and logs."""
    return url.render_as_string(hide_password=True)


def _first_line(error: DBAPIError) -> str:
    message = str(error.orig) if error.orig is not None else str(error)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error.orig).__name__


def current_database() -> Database:
    """The app's `Database` (for work that outlives the request: it keeps no request state)."""
    database: Database = current_app.extensions["parcours.database"]
    return database


def get_session() -> Session:
    """The current request's session, created on first use."""
    if "db_session" not in g:
        database: Database = current_app.extensions["parcours.database"]
        g.db_session = database.session()
    session: Session = g.db_session
    return session


def read_connection() -> Connection:
    """The connection of the request's session, for a page that starts by reading: it must be
    the session's first use in the request (see `Database.read_options`). Call `end_read()`
    before writing anything."""
    session = get_session()
    if session.in_transaction():  # something read already: go on in its transaction
        return session.connection()
    return session.connection(execution_options=current_database().read_options)


def end_read() -> None:
    """End the reads begun with `read_connection()`: what follows runs in a transaction of its
    own (the objects read stay usable)."""
    get_session().commit()


def close_session(_exc: BaseException | None = None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()


def enum_type(enum_class: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint listing the allowed values."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(member.value) for member in enum_class),
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
