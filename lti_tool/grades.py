"""Grade passback (LTI Assignment and Grade Services 2.0): the LMS gradebook follows each LTI
learner's participation, from "started" to the mastery rate they shared.

- When a participation starts or is shared, a listener marks the user's LTI learners of that
  campaign PENDING and queues one `lti.publish_score` job each, in the same transaction: the job
  exists if and only if the change committed. A dedupe key keeps at most one job waiting per
  learner.
- The job sends what is true *when it runs* (the latest live participation), so a job that
  waited never sends stale data, and a grade that failed is sent by the next attempt.
- Its timestamp is taken before the participation is read, and is always newer (at one-second
  granularity, Moodle's) than the last one sent: of two sends, the one carrying older data
  carries the older timestamp, which platforms must ignore (AGS 2.0) or refuse with a 409 that
  we retry later. Nothing sent can overwrite a newer grade.
- While a new attempt (`retry`) is under way, the score of the last shared participation stays
  in the gradebook: a score without `scoreGiven` would empty the teacher's column until the
  student shares again.
- Failures that may pass (timeouts, 5xx, 408, 409, 429) are retried with the queue's back-off;
  others park the job at once. The handler records each failure on the learner itself and, on
  the last attempt (which `config.jobs` does not announce: it is read from the job's row), marks
  the learner FAILED with an `LtiEvent`; `resend` ("renvoyer") queues it again.

With SQLite (the demo, which runs no worker) the job is also attempted right after the commit
that queued it, in a background thread: see `_attempt_after_commit`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session

from campaigns import connectors
from config.db import Database, expire_loaded, table_of, utcnow
from config.jobs import (
    LEASE,
    Job,
    JobStatus,
    PermanentFailure,
    RetryLater,
    enqueue_keyed,
    job_handler,
    run_job,
    worker_name,
)
from lti_tool import ags
from lti_tool.models import (
    GradeStatus,
    LtiDeployment,
    LtiEvent,
    LtiEventKind,
    LtiLearner,
    LtiPlatform,
    LtiResourceLink,
)

log = logging.getLogger(__name__)

SCORE_JOB = "lti.publish_score"
SCORE_MAXIMUM = 100
LINE_ITEM_TAG = "parcours"
ERROR_LENGTH = 300
# Whether a job is attempted right after the commit that queued it (SQLite only). Off in tests,
# whose sessions share one connection that a thread must not use; a test may turn it on.
ATTEMPT_AFTER_COMMIT = "parcours.lti_grades_after_commit"
_PENDING_JOBS = "lti_grades.jobs"  # session.info: jobs to attempt once the session commits
_DATABASE = "lti_grades.database"
_HOOKED = "lti_grades.hooked"

# Participation statuses (campaigns.connectors does not export the enum; the values are its).
STARTED, TO_SHARE, SHARED = "STARTED", "TO_SHARE", "SHARED"


def init_app(app: Flask) -> None:
    """Subscribe the participation listeners (once, however many apps are created)."""
    connectors.subscribe(connectors.Event.STARTED, on_participation)
    connectors.subscribe(connectors.Event.SHARED, on_participation)
    app.extensions.setdefault(ATTEMPT_AFTER_COMMIT, not app.testing)


def dedupe_key(lti_learner_id: int) -> str:
    return f"lti-score:{lti_learner_id}"


def has_ags(link: LtiResourceLink) -> bool:
    """The link can receive scores: a line item, or the right to find or create one."""
    return _can_score(link.ags_scopes, link.lineitem_url, link.lineitems_url)


def _can_score(
    scopes: list[str] | None, lineitem_url: str | None, lineitems_url: str | None
) -> bool:
    granted = set(scopes or [])
    return ags.SCORE_SCOPE in granted and bool(
        lineitem_url or (lineitems_url and ags.LINEITEM_SCOPE in granted)
    )


# -- queueing -------------------------------------------------------------------------------------

# Built once: a grade is queued at every launch and share (plain Core rows, no ORM objects).
_learners, _links = table_of(LtiLearner), table_of(LtiResourceLink)
_learner, _link = _learners.c, _links.c
_TO_GRADE = (
    select(_learner.id, _link.ags_scopes, _link.lineitem_url, _link.lineitems_url)
    .join_from(
        LtiLearner.__table__, LtiResourceLink.__table__, _link.id == _learner.resource_link_id
    )
    .where(_learner.user_id == bindparam("user_id"), _link.campaign_id == bindparam("campaign_id"))
)
_MARK_PENDING = (
    update(_learners)
    .where(_learner.id == bindparam("learner_id"))
    .values(
        grade_status=bindparam("status", type_=_learner.grade_status.type),
        grade_attempts=bindparam("attempts", type_=_learner.grade_attempts.type),
    )
)


def on_participation(session: Session, participation: connectors.Participation) -> None:
    """A participation started or was shared: queue the grade of the user's LTI learners in
    that campaign. For anyone else, this costs one SELECT."""
    rows = session.execute(
        _TO_GRADE, {"user_id": participation.user_id, "campaign_id": participation.campaign_id}
    ).all()
    for learner_id, scopes, lineitem_url, lineitems_url in rows:
        if _can_score(scopes, lineitem_url, lineitems_url):
            queue(session, learner_id)


def queue(session: Session, lti_learner_id: int) -> int:
    """Mark the learner PENDING and queue the job that sends their current grade (the job
    already waiting for them, if any). Returns the job's id."""
    job_id, attempts = enqueue_keyed(
        session,
        SCORE_JOB,
        {"lti_learner_id": lti_learner_id},
        dedupe_key=dedupe_key(lti_learner_id),
    )
    session.execute(
        _MARK_PENDING,
        {"learner_id": lti_learner_id, "status": GradeStatus.PENDING, "attempts": attempts},
    )
    expire_loaded(session, LtiLearner, lti_learner_id)
    _attempt_after_commit(session, job_id)
    return job_id


def resend(session: Session, lti_learner_id: int) -> bool:
    """Queue again the grade of a learner whose delivery failed ("renvoyer"). Returns whether
    it was queued (not when the learner is gone or their link cannot receive scores)."""
    learner = session.get(LtiLearner, lti_learner_id)
    if learner is None:
        return False
    link = session.get(LtiResourceLink, learner.resource_link_id)
    if link is None or not has_ags(link):
        return False
    queue(session, learner.id)
    return True


# -- what to send ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What the gradebook should show of a learner (AGS `activityProgress`, `gradingProgress`
    and the score out of `SCORE_MAXIMUM`, None before anything was shared)."""

    activity: str
    grading: str
    score: float | None

    def as_score(self, user_id: str, timestamp: dt.datetime) -> dict[str, Any]:
        body: dict[str, Any] = {"userId": user_id}
        if self.score is not None:
            body |= {"scoreGiven": self.score, "scoreMaximum": SCORE_MAXIMUM}
        return body | {
            "activityProgress": self.activity,
            "gradingProgress": self.grading,
            "timestamp": iso_timestamp(timestamp),
        }


def _percent(rate: Decimal | None) -> float | None:
    return None if rate is None else float(round(rate * SCORE_MAXIMUM, 2))


def _has_answers(session: Session, participation_id: int) -> bool:
    return connectors.has_answered(session, participation_id)


def current_progress(session: Session, campaign_id: int, user_id: int) -> Progress | None:
    """The user's progress in the campaign now, from their latest live participation; None
    when they have none (deleted)."""
    participations = session.scalars(
        select(connectors.Participation)
        .where(
            connectors.Participation.campaign_id == campaign_id,
            connectors.Participation.user_id == user_id,
            connectors.Participation.deleted_at.is_(None),
        )
        .order_by(connectors.Participation.id.desc())
    ).all()
    live = next((p for p in participations if not p.is_improved), None)
    if live is None:
        return None
    if live.status == SHARED:
        score = _percent(live.mastery_rate)
        return Progress("Completed", "FullyGraded" if score is not None else "Pending", score)
    if live.status == TO_SHARE or _has_answers(session, live.id):
        activity = "InProgress"
    else:
        activity = "Started"
    earlier = next(
        (p for p in participations if p.status == SHARED and p.mastery_rate is not None), None
    )
    if earlier is not None:  # a new attempt: the last shared score stays until the next share
        return Progress(activity, "FullyGraded", _percent(earlier.mastery_rate))
    return Progress(activity, "Pending", None)


def score_timestamp(last_sent_at: dt.datetime | None) -> dt.datetime:
    """Now, or the second after the last send when that is later: Moodle compares timestamps
    in whole seconds and answers 409 to one that is not newer."""
    now = utcnow()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as sent: milliseconds
    if last_sent_at is None:
        return now
    return max(now, last_sent_at.replace(microsecond=0) + dt.timedelta(seconds=1))


def iso_timestamp(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds: 2026-12-04T18:30:12.345Z."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- the job --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    number: int
    last: bool  # failing now parks the job


def _attempt(session: Session, lti_learner_id: int) -> Attempt:
    """This run's attempt, read from the job's row (`config.jobs` passes only the payload)."""
    job = session.scalars(
        select(Job)
        .where(Job.dedupe_key == dedupe_key(lti_learner_id), Job.status == JobStatus.RUNNING)
        .order_by(Job.id)
        .limit(1)
    ).first()
    if job is None:  # run outside the queue
        return Attempt(1, last=False)
    return Attempt(job.attempts, job.attempts >= job.max_attempts)


def _waiting(session: Session, lti_learner_id: int) -> bool:
    """A newer job waits for this learner (queued while this one ran)."""
    return (
        session.scalar(
            select(Job.id)
            .where(Job.dedupe_key == dedupe_key(lti_learner_id), Job.status == JobStatus.PENDING)
            .limit(1)
        )
        is not None
    )


def _target(
    session: Session, lti_learner_id: int
) -> tuple[LtiLearner, LtiResourceLink, LtiPlatform] | None:
    row = session.execute(
        select(LtiLearner, LtiResourceLink, LtiPlatform)
        .join(LtiResourceLink, LtiResourceLink.id == LtiLearner.resource_link_id)
        .join(LtiDeployment, LtiDeployment.id == LtiResourceLink.deployment_id)
        .join(LtiPlatform, LtiPlatform.id == LtiDeployment.platform_id)
        .where(LtiLearner.id == lti_learner_id)
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def _line_item(session: Session, client: ags.Client, link: LtiResourceLink) -> str:
    """The link's line item: the one we tagged for it, else a new one; stored on the link (and
    committed at once, so that a score that fails next does not create a second one)."""
    if link.lineitems_url is None:  # pragma: no cover - has_ags said there is one
        raise ags.PlatformError("line item: the link has no line item container", retry=False)
    wanted = {"resource_link_id": link.resource_link_id, "tag": LINE_ITEM_TAG}
    url = next(
        (
            item["id"]
            for item in client.line_items(link.lineitems_url, **wanted)
            if item.get("resourceLinkId") == link.resource_link_id
            and item.get("tag") == LINE_ITEM_TAG
            and isinstance(item.get("id"), str)
        ),
        None,
    )
    if url is None:
        campaign = session.get(connectors.Campaign, link.campaign_id) if link.campaign_id else None
        label = (campaign and (campaign.title or campaign.name)) or link.title or "Parcours"
        item: dict[str, Any] = {
            "scoreMaximum": SCORE_MAXIMUM,
            "label": label,
            "resourceLinkId": link.resource_link_id,
            "tag": LINE_ITEM_TAG,
        }
        if campaign is not None:
            item["resourceId"] = campaign.code
        url = client.create_line_item(link.lineitems_url, item)
    if len(url) > 1024:
        raise ags.PlatformError("line item: its URL is too long to keep", retry=False)
    link.lineitem_url = url
    session.commit()
    return url


@job_handler(SCORE_JOB)
def publish_score(session: Session, payload: dict[str, Any]) -> None:
    """Send a learner's current progress or score to their gradebook (the `lti.publish_score`
    job). Idempotent: it writes absolute values, and sending again what was sent is harmless."""
    lti_learner_id = int(payload["lti_learner_id"])
    target = _target(session, lti_learner_id)
    if target is None:
        return  # the learner, their link or the platform was deleted since
    learner, link, platform = target
    attempt = _attempt(session, lti_learner_id)
    timestamp = score_timestamp(learner.last_sent_at)  # before reading: see the module's doc
    progress = (
        current_progress(session, link.campaign_id, learner.user_id)
        if link.campaign_id is not None and has_ags(link)
        else None
    )
    if progress is None:  # nothing to send (participation deleted, link changed)
        learner.grade_status, learner.last_error = GradeStatus.NONE, None
        return
    score = progress.as_score(learner.sub, timestamp)
    try:
        with ags.Client(session, platform, ags.token_scopes(link.ags_scopes)) as client:
            lineitem_url = link.lineitem_url or _line_item(session, client, link)
            client.post_score(lineitem_url, score)
    except ags.PlatformError as error:
        message = _record_failure(session, lti_learner_id, attempt, str(error), retry=error.retry)
        if error.retry:
            raise RetryLater(message, error.delay) from None
        raise PermanentFailure(message) from None
    except Exception as error:
        _record_failure(session, lti_learner_id, attempt, type(error).__name__, retry=True)
        raise
    learner.grade_status = (
        GradeStatus.PENDING if _waiting(session, learner.id) else GradeStatus.SENT
    )
    learner.grade_attempts = attempt.number
    learner.last_sent_at = timestamp
    learner.last_sent_progress = progress.activity
    learner.last_sent_score = progress.score
    learner.last_error = None
    log.info("grade sent", extra={"lti_learner_id": learner.id, "progress": progress.activity})


def _record_failure(
    session: Session, lti_learner_id: int, attempt: Attempt, message: str, *, retry: bool
) -> str:
    """Note the failure on the learner, committed now (the queue rolls back the handler's
    session when it raises); on the last attempt, the learner is FAILED and the platform's
    events say so. Returns the message as kept: it names no token, and the learner by
    `identity_ref` only (a platform's error may quote the `sub`)."""
    session.rollback()
    target = _target(session, lti_learner_id)
    if target is None:
        return message[:ERROR_LENGTH]
    learner, link, platform = target
    reference = connectors.identity_ref(platform.issuer, learner.sub)
    message = message.replace(learner.sub, reference)[:ERROR_LENGTH]
    learner.last_error = message
    learner.grade_attempts = attempt.number
    if (attempt.last or not retry) and not _waiting(session, lti_learner_id):
        learner.grade_status = GradeStatus.FAILED
        session.add(
            LtiEvent(
                platform_id=platform.id,
                kind=LtiEventKind.GRADE_FAILED,
                summary=(
                    f"note non transmise : apprenant {reference}, lien {link.resource_link_id}"
                    f" ({message})"
                )[:500],
                created_at=utcnow(),
            )
        )
    session.commit()
    log.warning(
        "grade not sent",
        extra={"lti_learner_id": lti_learner_id, "attempt": attempt.number, "error": message},
    )
    return message


# -- right after the commit (SQLite) --------------------------------------------------------------


def _attempt_after_commit(session: Session, job_id: int) -> None:
    """With SQLite (the demo runs no worker), attempt the job right after the commit that
    queued it, in a background thread with its own session: the student's request does not
    wait for the platform. A worker running too is harmless: one of them claims the job."""
    if not (has_app_context() and current_app.extensions.get(ATTEMPT_AFTER_COMMIT)):
        return
    if session.get_bind().dialect.name != "sqlite":
        return
    session.info.setdefault(_PENDING_JOBS, set()).add(job_id)
    session.info[_DATABASE] = current_app.extensions["parcours.database"]
    if not session.info.get(_HOOKED):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        session.info[_HOOKED] = True


def _after_commit(session: Session) -> None:
    job_ids = session.info.pop(_PENDING_JOBS, None)
    database = session.info.get(_DATABASE)
    if job_ids and database is not None:
        threading.Thread(
            target=attempt_now, args=(database, sorted(job_ids)), name="lti-grades", daemon=True
        ).start()


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_JOBS, None)


def attempt_now(database: Database, job_ids: list[int]) -> None:
    """Claim and run these grade jobs if they still wait (a worker may have taken them)."""
    worker = f"{worker_name()}:after-commit"
    for job_id in job_ids:
        try:
            if _claim(database, job_id, worker):
                run_job(database, job_id, worker=worker)
        except Exception:
            log.exception("grade job attempt after commit failed", extra={"job_id": job_id})


def _claim(database: Database, job_id: int, worker: str) -> bool:
    """Take this job as `config.jobs.claim_next` takes the next one (even when it waits for a
    retry: a new share deserves an attempt now)."""
    now = utcnow()
    claim = (
        update(Job)
        .where(Job.id == job_id, Job.kind == SCORE_JOB, Job.status == JobStatus.PENDING)
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
        return session.execute(claim).scalar_one_or_none() is not None
