"""Round trips between Parcours and PostgreSQL, counted where they happen: in psycopg2.

A psycopg2 connection sends one message and waits for its answer for each statement, for the
BEGIN it sends before the first statement of a transaction, and for each COMMIT or ROLLBACK of a
transaction in progress (none in autocommit, none when nothing was sent). `CountingConnection`
counts exactly those, per page (the Flask endpoint and method of the request, "" outside
requests; a transaction ended after its request counts for the request's page).

`python -m bench.http_answers --round-trips` loads this file as gunicorn's configuration: every
worker counts, and writes its counts to `PARCOURS_ROUND_TRIPS_DIR` when it stops. The answer path's
test (tests/test_answer_path.py) counts with it in process.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg2.extensions
from sqlalchemy import Engine, event

counts: Counter[str] = Counter()


def _page() -> str:
    from flask import has_request_context, request

    return f"{request.method} {request.endpoint}" if has_request_context() else ""


class CountingCursor(psycopg2.extensions.cursor):
    def _count(self) -> None:
        connection = self.connection
        page = connection.page = _page()
        if not connection.autocommit and connection.status == psycopg2.extensions.STATUS_READY:
            counts[page] += 1  # the BEGIN psycopg2 sends first
        counts[page] += 1

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
            counts[_page() or self.page] += 1

    def commit(self) -> None:
        self._ends()
        super().commit()

    def rollback(self) -> None:
        self._ends()
        super().rollback()


def count_round_trips(engine: Engine | type[Engine]) -> None:
    """Count the round trips of the connections `engine` (or every engine) opens from now on."""

    @event.listens_for(engine, "do_connect")
    def _counting(_dialect: Any, _record: Any, _args: Any, parameters: dict[str, Any]) -> None:
        parameters["connection_factory"] = CountingConnection


# -- gunicorn's configuration hooks (`gunicorn -c bench/round_trips.py`) -------------------------


def post_fork(_server: Any, _worker: Any) -> None:
    count_round_trips(Engine)


def worker_exit(_server: Any, _worker: Any) -> None:
    folder = os.environ.get("PARCOURS_ROUND_TRIPS_DIR")
    if folder:
        (Path(folder) / f"{os.getpid()}.json").write_text(json.dumps(counts))
