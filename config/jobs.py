"""A durable job queue in the database: background work survives restarts and is never dropped.

Packages register handlers by name (`@job_handler("lti.publish_score")`), enqueue jobs inside
their own transaction (so a job exists if and only if the change that asked for it committed),
and `parcours worker` runs them. Any number of workers on any number of hosts may run at once:
a job is claimed by one conditional UPDATE (with `FOR UPDATE SKIP LOCKED` on PostgreSQL), holds a
lease while it runs, and a job whose worker died is claimed again when the lease runs out.

A failing job is retried with exponential back-off; after `max_attempts` it is parked as FAILED,
kept with its last error, and `parcours jobs retry` puts it back in the queue.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, Integer, String, Text, bindparam, delete, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from config.db import (
    Base,
    Database,
    JSONDocument,
    UTCDateTime,
    enum_type,
    execute_dml,
    table_of,
    upsert,
    utcnow,
)

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=5)
FIRST_RETRY_DELAY = dt.timedelta(seconds=30)
MAX_RETRY_DELAY = dt.timedelta(hours=1)
DEFAULT_MAX_ATTEMPTS = 12  # about 7 hours of retries before a job is parked
ERROR_MAX_LENGTH = 500


PENDING_SQL = "status = 'PENDING'"


class JobStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    status: Mapped[JobStatus] = mapped_column(
        enum_type(JobStatus, "job_status"), default=JobStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_ATTEMPTS)
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    # At most one waiting job per key (e.g. the latest grade of a user for a line item).
    dedupe_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_jobs_status_run_at", "status", "run_at"),
        Index(
            "uq_jobs_dedupe_key_pending",
            "dedupe_key",
            unique=True,
            sqlite_where=text(PENDING_SQL),
            postgresql_where=text(PENDING_SQL),
        ),
    )


class RetryLater(Exception):
    """Raised by a handler when the work should be tried again after `delay`."""

    def __init__(self, message: str, delay: dt.timedelta | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help; the job is parked as FAILED at once."""


KEYED_COLUMNS = (
    "kind",
    "payload",
    "run_at",
    "dedupe_key",
    "max_attempts",
    "status",
    "attempts",
    "created_at",
)
Handler = Callable[[Session, dict[str, Any]], None]
_handlers: dict[str, Handler] = {}


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        if kind in _handlers and _handlers[kind] is not function:
            raise ValueError(f"a handler for job kind {kind!r} is already registered")
        _handlers[kind] = function
        return function

    return register


def registered_kinds() -> list[str]:
    return sorted(_handlers)


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: dt.datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Job:
    """Add a job in the caller's transaction.

    With a dedupe key, a job still waiting under that key is updated instead (its payload
    replaced by this newer one: the latest grade wins); a job already running is left alone and
    this one queued after it.
    """
    values = _values(kind, payload, run_at, dedupe_key, max_attempts)
    if dedupe_key is None:
        job = Job(**values)
        session.add(job)
        session.flush()
        return job
    # One statement, atomic under concurrency: the waiting job of this key takes the newer
    # payload, or a new job is queued (a RUNNING one does not hold the key).
    queued: Job = session.scalars(
        _keyed_insert(session.get_bind().dialect.name, lean=False),
        values,
        execution_options={"populate_existing": True},
    ).one()
    return queued


def enqueue_keyed(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> tuple[int, int]:
    """`enqueue` under a dedupe key for the hot paths (a grade queued at each launch and share):
    the same statement, answering the job's id and attempts as plain values, no ORM object."""
    row = session.execute(
        _keyed_insert(session.get_bind().dialect.name, lean=True),
        _values(kind, payload, None, dedupe_key, max_attempts),
    ).one()
    return row.id, row.attempts


def _values(
    kind: str,
    payload: dict[str, Any],
    run_at: dt.datetime | None,
    dedupe_key: str | None,
    max_attempts: int,
) -> dict[str, Any]:
    if kind not in _handlers:
        raise ValueError(f"no handler registered for job kind {kind!r}")
    now = utcnow()
    return {
        "kind": kind,
        "payload": payload,
        "run_at": run_at or now,
        "dedupe_key": dedupe_key,
        "max_attempts": max_attempts,
        "status": JobStatus.PENDING,
        "attempts": 0,
        "created_at": now,
    }


@functools.cache
def _keyed_insert(dialect: str, *, lean: bool) -> Any:
    """INSERT … ON CONFLICT on the waiting job's key, built once per dialect (building it is
    most of its cost); `lean` returns the id and attempts as a plain row instead of the Job."""
    table = table_of(Job)
    statement = upsert(dialect, table if lean else Job).values(
        {column: bindparam(column, type_=table.c[column].type) for column in KEYED_COLUMNS}
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.dedupe_key],
        index_where=text(PENDING_SQL),
        set_={"payload": statement.excluded.payload, "kind": statement.excluded.kind},
    )
    return statement.returning(table.c.id, table.c.attempts) if lean else statement.returning(Job)


def withdraw(session: Session, dedupe_key: str) -> bool:
    """Drop the job still waiting under `dedupe_key`, in the caller's transaction (an e-mail
    whose link no longer works, say). A job already running or done is left alone. Returns
    whether one was withdrawn."""
    withdrawn = execute_dml(
        session, delete(Job).where(Job.dedupe_key == dedupe_key, Job.status == JobStatus.PENDING)
    )
    return bool(withdrawn.rowcount)


@dataclass(frozen=True)
class RunReport:
    done: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.done + self.retried + self.failed

    def __add__(self, other: RunReport) -> RunReport:
        return RunReport(
            self.done + other.done, self.retried + other.retried, self.failed + other.failed
        )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim_next(database: Database, *, worker: str, now: dt.datetime | None = None) -> int | None:
    """Claim one due job for `worker` and return its id, or None when nothing is due.

    One UPDATE picks and takes the job, so two workers never take the same one (PostgreSQL skips
    rows another worker is taking; SQLite has one writer at a time)."""
    now = now or utcnow()
    due = (Job.status == JobStatus.PENDING) | (
        (Job.status == JobStatus.RUNNING) & (Job.locked_until < now)
    )
    next_due = (
        select(Job.id)
        .where(due, Job.run_at <= now)
        .order_by(Job.run_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claim = (
        update(Job)
        .where(Job.id == next_due)
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            locked_until=now + LEASE,
            locked_by=worker,
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    with database.session() as session, session.begin():
        return session.execute(claim).scalar_one_or_none()


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


def _owned(claimed: _Claimed, worker: str) -> Any:
    """Still ours: nobody re-claimed the job after our lease ran out."""
    return (
        (Job.id == claimed.id)
        & (Job.status == JobStatus.RUNNING)
        & (Job.locked_by == worker)
        & (Job.attempts == claimed.attempts)
    )


def run_job(database: Database, job_id: int, *, worker: str) -> RunReport:
    """Run one claimed job. The handler's changes and the DONE mark commit together, and only
    if the job is still ours; a handler must finish within the lease (HTTP calls need timeouts)
    and be idempotent: a job whose worker vanished runs again."""
    with database.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.RUNNING or job.locked_by != worker:
            return RunReport()
        claimed = _Claimed(job.id, job.kind, dict(job.payload), job.attempts)
    handler = _handlers.get(claimed.kind)
    with database.session() as session:
        try:
            if handler is None:
                raise PermanentFailure(f"no handler registered for job kind {claimed.kind!r}")
            handler(session, claimed.payload)
            finished = execute_dml(
                session,
                update(Job)
                .where(_owned(claimed, worker))
                .values(
                    status=JobStatus.DONE, finished_at=utcnow(), locked_until=None, last_error=None
                )
                .execution_options(synchronize_session=False),
            )
            if finished.rowcount != 1:
                session.rollback()
                log.warning(
                    "job lease lost; its changes were rolled back", extra={"job_id": claimed.id}
                )
                return RunReport()
            session.commit()
            log.info("job done", extra={"job_id": claimed.id, "kind": claimed.kind})
            return RunReport(done=1)
        except Exception as error:  # the handler's failure is recorded, never lost
            session.rollback()
            return _record_failure(database, claimed, worker, error)


def _record_failure(
    database: Database, claimed: _Claimed, worker: str, error: Exception
) -> RunReport:
    message = f"{type(error).__name__}: {error}"[:ERROR_MAX_LENGTH]
    permanent = isinstance(error, PermanentFailure)
    with database.session() as session, session.begin():
        job = session.scalars(select(Job).where(_owned(claimed, worker))).one_or_none()
        if job is None:
            return RunReport()  # lease lost: the new owner decides
        job.last_error = message
        job.locked_until = None
        if permanent or job.attempts >= job.max_attempts:
            job.status = JobStatus.FAILED
            job.finished_at = utcnow()
            log.error(
                "job failed for good",
                extra={"job_id": job.id, "kind": job.kind, "attempts": job.attempts},
            )
            return RunReport(failed=1)
        newer = (
            session.scalar(
                select(Job.id).where(
                    Job.dedupe_key == job.dedupe_key, Job.status == JobStatus.PENDING
                )
            )
            if job.dedupe_key is not None
            else None
        )
        if newer is not None:
            # Queued under the same key while this one ran: it carries the newer payload and
            # does this one's work (a retry here would also break the one-waiting-job rule).
            job.status = JobStatus.DONE
            job.finished_at = utcnow()
            job.last_error = f"superseded by job {newer}; {message}"[:ERROR_MAX_LENGTH]
            log.info("job superseded", extra={"job_id": job.id, "by": newer, "kind": job.kind})
            return RunReport(retried=1)
        delay = error.delay if isinstance(error, RetryLater) and error.delay else None
        job.status = JobStatus.PENDING
        job.run_at = utcnow() + (delay or retry_delay(job.attempts))
        log.warning(
            "job will be retried",
            extra={"job_id": job.id, "kind": job.kind, "attempts": job.attempts, "error": message},
        )
        return RunReport(retried=1)


def retry_delay(attempts: int) -> dt.timedelta:
    """30 s, 1 min, 2 min, 4 min … capped at one hour."""
    delay: dt.timedelta = FIRST_RETRY_DELAY * (2 ** max(attempts - 1, 0))
    return min(delay, MAX_RETRY_DELAY)


def run_due_jobs(
    database: Database,
    *,
    worker: str | None = None,
    limit: int = 1000,
    stop: threading.Event | None = None,
) -> RunReport:
    """Run jobs until none is due, `limit` were run, or `stop` is set (between two jobs)."""
    worker = worker or worker_name()
    report = RunReport()
    while report.total < limit and not (stop is not None and stop.is_set()):
        job_id = claim_next(database, worker=worker)
        if job_id is None:
            break
        report += run_job(database, job_id, worker=worker)
    return report


def run_forever(
    database: Database,
    *,
    stop: threading.Event,
    poll_seconds: float = 1.0,
    maintenance: Sequence[Callable[[Session], object]] = (),
    maintenance_every: dt.timedelta = dt.timedelta(minutes=10),
) -> None:
    """Run jobs until `stop` is set; a database outage pauses the worker, it does not end it."""
    worker = worker_name()
    log.info("worker started", extra={"worker": worker, "kinds": registered_kinds()})
    next_maintenance = utcnow()
    failures = 0
    while not stop.is_set():
        try:
            if maintenance and utcnow() >= next_maintenance:
                with database.session() as session, session.begin():
                    for task in maintenance:
                        task(session)
                next_maintenance = utcnow() + maintenance_every
            report = run_due_jobs(database, worker=worker, limit=100, stop=stop)
            failures = 0
        except SQLAlchemyError as error:
            failures += 1
            pause = min(poll_seconds * 2**failures, 60.0)
            log.warning(
                "database unavailable; worker pauses",
                extra={"error": type(error).__name__, "seconds": pause},
            )
            stop.wait(pause)
            continue
        if report.total == 0:
            stop.wait(poll_seconds)
    log.info("worker stopped", extra={"worker": worker})


def retry_failed(session: Session, *, kind: str | None = None) -> int:
    """Put parked jobs back in the queue with a fresh set of attempts. Of several parked jobs
    with one dedupe key only the newest returns, and none when a job with that key waits."""
    query = select(Job).where(Job.status == JobStatus.FAILED).order_by(Job.id.desc())
    if kind is not None:
        query = query.where(Job.kind == kind)
    waiting_keys = set(
        session.scalars(
            select(Job.dedupe_key).where(
                Job.status == JobStatus.PENDING, Job.dedupe_key.is_not(None)
            )
        )
    )
    count = 0
    for job in session.scalars(query):
        if job.dedupe_key is not None:
            if job.dedupe_key in waiting_keys:
                continue
            waiting_keys.add(job.dedupe_key)
        job.status = JobStatus.PENDING
        job.attempts = 0
        job.run_at = utcnow()
        job.finished_at = None
        count += 1
    session.flush()
    return count
