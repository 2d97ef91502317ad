"""The durable job queue: nothing is dropped, nothing runs twice at once, failures are retried."""

import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from config.db import Database, utcnow
from config.jobs import (
    LEASE,
    Job,
    JobStatus,
    PermanentFailure,
    RetryLater,
    claim_next,
    enqueue,
    job_handler,
    retry_delay,
    retry_failed,
    run_due_jobs,
    run_job,
)
from config.migrations import upgrade
from config.settings import Settings

calls: Counter[str] = Counter()
outcomes: dict[str, list[object]] = {}


@job_handler("test.record")
def record(session, payload):
    calls[payload["name"]] += 1


@job_handler("test.flaky")
def flaky(session, payload):
    calls[payload["name"]] += 1
    plan = outcomes[payload["name"]]
    outcome = plan.pop(0) if plan else None
    if isinstance(outcome, Exception):
        raise outcome


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()
    outcomes.clear()


def job(db_session, job_id):
    db_session.expire_all()
    return db_session.get(Job, job_id)


def test_a_job_runs_once_and_is_marked_done(bound_database, db_session):
    queued = enqueue(db_session, "test.record", {"name": "a"})
    db_session.commit()
    report = run_due_jobs(bound_database)
    assert (report.done, report.retried, report.failed) == (1, 0, 0)
    assert calls["a"] == 1
    done = job(db_session, queued.id)
    assert done.status is JobStatus.DONE and done.attempts == 1 and done.finished_at
    assert run_due_jobs(bound_database).total == 0


def test_a_failure_is_retried_later_with_backoff(bound_database, db_session):
    outcomes["b"] = [RuntimeError("LMS is down")]
    queued = enqueue(db_session, "test.flaky", {"name": "b"})
    db_session.commit()
    before = utcnow()
    assert run_due_jobs(bound_database).retried == 1
    waiting = job(db_session, queued.id)
    assert waiting.status is JobStatus.PENDING
    assert waiting.last_error == "RuntimeError: LMS is down"
    assert waiting.run_at >= before + dt.timedelta(seconds=30)
    assert run_due_jobs(bound_database).total == 0  # not due yet

    waiting.run_at = utcnow()
    db_session.commit()
    assert run_due_jobs(bound_database).done == 1
    assert calls["b"] == 2
    assert job(db_session, queued.id).attempts == 2


def test_retry_later_may_choose_its_delay(bound_database, db_session):
    outcomes["c"] = [RetryLater("429 from the LMS", delay=dt.timedelta(minutes=7))]
    queued = enqueue(db_session, "test.flaky", {"name": "c"})
    db_session.commit()
    run_due_jobs(bound_database)
    assert job(db_session, queued.id).run_at > utcnow() + dt.timedelta(minutes=6)


def test_jobs_are_parked_after_max_attempts_and_can_be_retried(bound_database, db_session):
    outcomes["d"] = [RuntimeError("down")] * 3
    queued = enqueue(db_session, "test.flaky", {"name": "d"}, max_attempts=2)
    db_session.commit()
    run_due_jobs(bound_database)
    job(db_session, queued.id).run_at = utcnow()
    db_session.commit()
    assert run_due_jobs(bound_database).failed == 1
    parked = job(db_session, queued.id)
    assert parked.status is JobStatus.FAILED and parked.attempts == 2

    assert retry_failed(db_session) == 1
    db_session.commit()
    outcomes["d"] = []
    assert run_due_jobs(bound_database).done == 1


def test_permanent_failures_are_parked_at_once(bound_database, db_session):
    outcomes["e"] = [PermanentFailure("user is not gradable")]
    queued = enqueue(db_session, "test.flaky", {"name": "e"})
    db_session.commit()
    assert run_due_jobs(bound_database).failed == 1
    assert job(db_session, queued.id).status is JobStatus.FAILED


def test_a_dedupe_key_keeps_one_waiting_job_with_the_latest_payload(bound_database, db_session):
    first = enqueue(db_session, "test.record", {"name": "f", "score": 1}, dedupe_key="grade:1")
    second = enqueue(db_session, "test.record", {"name": "f", "score": 2}, dedupe_key="grade:1")
    assert first.id == second.id
    assert job(db_session, first.id).payload["score"] == 2
    db_session.commit()
    run_due_jobs(bound_database)
    third = enqueue(db_session, "test.record", {"name": "f"}, dedupe_key="grade:1")
    assert third.id != first.id  # once done, the key is free again


def test_a_newer_job_is_queued_behind_a_running_one(bound_database, db_session):
    first = enqueue(db_session, "test.record", {"name": "h", "score": 1}, dedupe_key="grade:2")
    db_session.commit()
    assert claim_next(bound_database, worker="busy") == first.id
    second = enqueue(db_session, "test.record", {"name": "h", "score": 2}, dedupe_key="grade:2")
    db_session.commit()
    assert second.id != first.id  # the newer grade is not lost
    assert job(db_session, second.id).status is JobStatus.PENDING


def test_unknown_kinds_are_refused_at_enqueue(db_session):
    with pytest.raises(ValueError, match="no handler"):
        enqueue(db_session, "test.nobody", {})


def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(bound_database, db_session):
    queued = enqueue(db_session, "test.record", {"name": "g"})
    db_session.commit()
    assert claim_next(bound_database, worker="dead-worker") == queued.id
    assert claim_next(bound_database, worker="other") is None  # leased
    later = utcnow() + LEASE + dt.timedelta(seconds=1)
    assert claim_next(bound_database, worker="other", now=later) == queued.id
    # The dead worker waking up cannot finish a job that is no longer its own.
    assert run_job(bound_database, queued.id, worker="dead-worker").total == 0
    assert run_job(bound_database, queued.id, worker="other").done == 1


def test_a_handler_that_outlives_its_lease_cannot_mark_the_job_done(bound_database, db_session):
    from campaigns.shared.models import Organization, OrganizationType

    @job_handler("test.slow")
    def slow(session, payload):
        # Meanwhile the lease ran out and another worker took the job over.
        session.add(Organization(name="Written by the slow worker", type=OrganizationType.PRO))
        later = utcnow() + LEASE + dt.timedelta(seconds=1)
        assert claim_next(bound_database, worker="fast", now=later) == payload["id"]

    queued = enqueue(db_session, "test.slow", {})
    queued.payload = {"id": queued.id}
    db_session.commit()
    assert claim_next(bound_database, worker="slow") == queued.id

    assert run_job(bound_database, queued.id, worker="slow").total == 0
    taken = job(db_session, queued.id)
    assert taken.status is JobStatus.RUNNING and taken.locked_by == "fast"
    assert (
        db_session.scalar(
            select(Organization).where(Organization.name == "Written by the slow worker")
        )
        is None
    )


def test_the_handler_changes_and_the_done_mark_commit_together(bound_database, db_session):
    from campaigns.shared.models import Organization, OrganizationType

    @job_handler("test.writes-then-fails")
    def writes_then_fails(session, payload):
        session.add(Organization(name="Half-done", type=OrganizationType.PRO))
        session.flush()
        raise RuntimeError("boom")

    enqueue(db_session, "test.writes-then-fails", {})
    db_session.commit()
    run_due_jobs(bound_database)
    db_session.expire_all()
    assert db_session.scalar(select(Organization).where(Organization.name == "Half-done")) is None


def test_retry_requeues_only_the_newest_failure_per_key(bound_database, db_session):
    for _ in range(2):
        db_session.add(
            Job(
                kind="test.record",
                payload={"name": "i"},
                status=JobStatus.FAILED,
                attempts=12,
                dedupe_key="grade:3",
            )
        )
    db_session.add(
        Job(kind="test.record", payload={"name": "j"}, status=JobStatus.FAILED, attempts=12)
    )
    db_session.flush()
    assert retry_failed(db_session) == 2
    assert retry_failed(db_session) == 0


def test_retry_delays_grow_and_are_capped():
    delays = [retry_delay(n).total_seconds() for n in range(1, 10)]
    assert delays[:4] == [30, 60, 120, 240]
    assert max(delays) == 3600


def test_concurrent_workers_run_each_job_exactly_once(scratch_databases):
    database = Database(Settings(database_url=scratch_databases.new("jobs")))
    upgrade(database)
    with database.session() as session, session.begin():
        for n in range(60):
            enqueue(session, "test.record", {"name": f"job{n}"})

    def work(name):
        run_due_jobs(database, worker=name)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    database.dispose()

    assert sorted(calls) == sorted(f"job{n}" for n in range(60))
    assert set(calls.values()) == {1}
    with Database(Settings(database_url=database.url.render_as_string(False))).session() as s:
        assert s.scalar(select(func.count()).where(Job.status == JobStatus.DONE)) == 60


def test_two_transactions_queueing_one_key_leave_one_waiting_job(scratch_databases):
    """The second transaction waits for the first (PostgreSQL locks the conflicting row; SQLite
    the whole file), then takes over its job: one waiting job, the newer payload."""
    database = Database(Settings(database_url=scratch_databases.new("jobkeys")))
    upgrade(database)
    queued: dict[str, int] = {}
    with database.session() as first:
        queued["first"] = enqueue(first, "test.record", {"n": 1}, dedupe_key="grade:9").id

        def second_transaction():
            with database.session() as second:
                queued["second"] = enqueue(second, "test.record", {"n": 2}, dedupe_key="grade:9").id
                second.commit()

        thread = threading.Thread(target=second_transaction)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive()  # held by the first transaction's row
        first.commit()
    thread.join(10)
    with database.session() as session:
        jobs = session.scalars(select(Job).where(Job.dedupe_key == "grade:9")).all()
    database.dispose()
    assert queued["first"] == queued["second"]
    assert [(j.status, j.payload) for j in jobs] == [(JobStatus.PENDING, {"n": 2})]


def test_a_failed_job_whose_key_was_queued_again_meanwhile_gives_way_to_the_newer_one(
    bound_database, db_session
):
    outcomes["k"] = [RuntimeError("platform down")]
    first = enqueue(db_session, "test.flaky", {"name": "k"}, dedupe_key="grade:7")
    db_session.commit()
    assert claim_next(bound_database, worker="w1") == first.id
    newer = enqueue(db_session, "test.flaky", {"name": "k2"}, dedupe_key="grade:7")
    db_session.commit()
    assert newer.id != first.id
    assert run_job(bound_database, first.id, worker="w1").retried == 1  # no unique violation
    assert job(db_session, first.id).status is JobStatus.DONE
    assert "superseded by job" in job(db_session, first.id).last_error
    assert job(db_session, newer.id).status is JobStatus.PENDING
