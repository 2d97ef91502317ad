"""Round trips between Parcours and PostgreSQL, counted where they happen: in psycopg2.

A psycopg2 connection sends one message and waits for its answer for each statement, for the
BEGIN it sends before the first statement of a transaction, for each COMMIT or ROLLBACK of a
transaction in progress (none in autocommit, none when nothing was sent), and for the SET it sends
when it switches to autocommit while an isolation level is set (`SET default_transaction_isolation
TO DEFAULT`: SQLAlchemy's `isolation_level="AUTOCOMMIT"` costs one on every use after the first;
`set_session` counts as one too). `CountingConnection` counts those, per page of the answer path (the Flask method and endpoint of the request;
a transaction ended after its request, at teardown, counts for that request's page).

`python -m bench.http_answers` serves `bench.round_trips:app`, Parcours's WSGI app with counting
on: each server process keeps its counts in a small memory-mapped file of
`PARCOURS_ROUND_TRIPS_DIR` (a store to memory per round trip, no system call), which the
benchmark sums once the server stopped. The answer path's test counts with it in process.

That app also times the cyclic garbage collector's collections, per page in the same way (in
microseconds, in files of their own): their cost depends on every object a worker holds, not on
the page that happened to trigger them, and the benchmark reports it apart. It is the time from
the start of a collection to its end (a worker runs one request at a time, so that is nearly all
CPU on a machine that is not overloaded); collections outside a request count for "other".
"""

from __future__ import annotations

import gc
import mmap
import os
import struct
import time
from pathlib import Path
from typing import Any

import psycopg2.extensions
from flask import has_request_context, request
from sqlalchemy import Engine, event

PAGES = ("GET journey.question", "POST journey.question", "GET journey.checkpoint", "other")
_SLOTS = struct.Struct(f"<{len(PAGES)}q")


class Counts:
    """Round trips (or other amounts) per page, in this process (in a file of `folder` when
    given, named after the process and `kind`)."""

    def __init__(self, folder: str | None = None, kind: str = "counts") -> None:
        self.folder = folder
        self.kind = kind
        self.pid = -1
        self.memory: Any = bytearray(_SLOTS.size)

    def _slots(self) -> Any:
        if self.folder and self.pid != os.getpid():  # a new server process: a file of its own
            self.pid = os.getpid()
            path = Path(self.folder) / f"{self.pid}.{self.kind}"
            path.write_bytes(bytes(_SLOTS.size))
            with path.open("r+b") as file:
                self.memory = mmap.mmap(file.fileno(), _SLOTS.size)
        return self.memory

    def add(self, page: str, amount: int = 1) -> None:
        slots = self._slots()
        index = PAGES.index(page) if page in PAGES else len(PAGES) - 1
        offset = index * 8
        (value,) = struct.unpack_from("<q", slots, offset)
        struct.pack_into("<q", slots, offset, value + amount)

    def totals(self) -> dict[str, int]:
        return dict(zip(PAGES, _SLOTS.unpack(bytes(self._slots())), strict=True))

    def reset(self) -> None:
        self._slots()[:] = bytes(_SLOTS.size)


counts = Counts(os.environ.get("PARCOURS_ROUND_TRIPS_DIR"))
gc_microseconds = Counts(os.environ.get("PARCOURS_ROUND_TRIPS_DIR"), "gc")


def totals_in(folder: Path, kind: str = "counts") -> dict[str, int]:
    """The counts (or, `kind` "gc", the microseconds of garbage collection) the server processes
    left in `folder` (then removed), summed per page."""
    total = dict.fromkeys(PAGES, 0)
    for path in folder.glob(f"*.{kind}"):
        for page, n in zip(PAGES, _SLOTS.unpack(path.read_bytes()), strict=True):
            total[page] += n
        path.unlink()
    return total


def _page() -> str:
    return f"{request.method} {request.endpoint}" if has_request_context() else ""


class CountingCursor(psycopg2.extensions.cursor):
    def _count(self) -> None:
        connection = self.connection
        page = connection.page = _page()
        if not connection.autocommit and connection.status == psycopg2.extensions.STATUS_READY:
            counts.add(page)  # the BEGIN psycopg2 sends first
        counts.add(page)

    def execute(self, query: Any, vars: Any = None) -> None:
        self._count()
        super().execute(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> None:
        self._count()  # SQLAlchemy batches inserts into one statement; count what is sent
        super().executemany(query, vars_list)


class CountingConnection(psycopg2.extensions.connection):
    page = ""  # of the last statement: a transaction may end after its request (teardown)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cursor_factory", CountingCursor)
        return super().cursor(*args, **kwargs)

    def _ends(self) -> None:
        if self.status != psycopg2.extensions.STATUS_READY:  # a transaction is open
            counts.add(_page() or self.page)

    def commit(self) -> None:
        self._ends()
        super().commit()

    def set_isolation_level(self, level: Any) -> None:
        if level == psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT:
            self._to_autocommit()
        super().set_isolation_level(level)

    def set_session(self, *args: Any, **kwargs: Any) -> None:
        counts.add(_page())
        super().set_session(*args, **kwargs)

    @property  # type: ignore[override]
    def autocommit(self) -> bool:
        return bool(psycopg2.extensions.connection.autocommit.__get__(self))

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        if value:
            self._to_autocommit()
        psycopg2.extensions.connection.autocommit.__set__(self, value)

    def _to_autocommit(self) -> None:
        if not self.autocommit and self.isolation_level is not None:
            counts.add(_page())  # SET default_transaction_isolation TO DEFAULT

    def rollback(self) -> None:
        self._ends()
        super().rollback()


def count_round_trips(engine: Engine | type[Engine]) -> None:
    """Count the round trips of the connections `engine` (or every engine) opens from now on."""

    @event.listens_for(engine, "do_connect")
    def _counting(_dialect: Any, _record: Any, _args: Any, parameters: dict[str, Any]) -> None:
        parameters["connection_factory"] = CountingConnection


def time_collections() -> None:
    """Add the time of each of this process's garbage collections from now on to
    `gc_microseconds`, for the page of the request that triggered it."""
    started = 0.0

    def timing(phase: str, _info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            gc_microseconds.add(_page(), round((time.perf_counter() - started) * 1_000_000))

    gc.callbacks.append(timing)


def __getattr__(name: str) -> Any:
    """`app`: Parcours's WSGI app (wsgi.py) with every engine's round trips counted and the
    garbage collections timed."""
    if name != "app":
        raise AttributeError(name)
    global _counted
    if not _counted:
        count_round_trips(Engine)
        time_collections()
        _counted = True
    from wsgi import app

    return app


_counted = False
