"""The answer path: the question page, the answer and the checkpoint, on prebuilt SQLAlchemy Core
statements returning plain rows.

Students answer every few seconds, a whole school at once: these three pages are the product's
hot path, and each costs a fixed, small number of round trips to the database. One statement
reads who is signed in together with the campaign of the code, the student's participation and
their test in progress (`load_spot`); one reads the test's answers with the student's knowledge
(`_evidence`); an answer is one insert, the knowledge it brings one more, and the test's new state
one update. Nothing here builds or flushes an ORM object but the signed-in user and session the
rest of the request expects (`campaigns.accounts.auth`); `services` wraps these functions for
the ORM callers (the demo, the services' tests) so there is one way to record an answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    String,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    null,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from campaigns.accounts.sessions import ReadSignedIn, token_hash
from campaigns.shared.errors import ServiceError
from campaigns.shared.models import (
    Answer,
    AnswerResult,
    Assessment,
    AssessmentState,
    Campaign,
    CampaignType,
    KnowledgeElement,
    KnowledgeElementSource,
    KnowledgeElementStatus,
    Organization,
    Participation,
    ParticipationStatus,
    User,
    UserSession,
)
from config.db import Prepared, table_of, upsert, utcnow
from engine import answers as checking
from engine.content import Challenge
from engine.knowledge import Knowledge, NewKnowledge, Source, Status, effective
from engine.scoring import is_checkpoint, rounded_percent
from engine.selection import SELECTORS, Situation, Step

if TYPE_CHECKING:
    from campaigns.journey.services import CampaignContent

TIMER_GRACE = dt.timedelta(seconds=5)  # network and rendering time on top of the displayed timer
RETRY_AFTER = dt.timedelta(days=4)

_users, _sessions, _campaigns = table_of(User), table_of(UserSession), table_of(Campaign)
_organizations, _participations = table_of(Organization), table_of(Participation)
_assessments, _answers = table_of(Assessment), table_of(Answer)
_knowledge = table_of(KnowledgeElement)


class NotCurrent(ServiceError):
    """The answer is for a challenge that is not the one on screen (`code`: why)."""


# -- what a test page knows ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignRef:
    """What the test pages read of a campaign (a row, not an ORM object)."""

    id: int
    code: str
    title: str | None
    type: CampaignType
    content_version: str | None
    selector: str
    organization_id: int
    archived_at: dt.datetime | None
    organization_archived_at: dt.datetime | None

    @property
    def is_open(self) -> bool:
        """Archived campaigns, and campaigns of archived organizations, accept nothing more."""
        return self.archived_at is None and self.organization_archived_at is None


@dataclass(frozen=True, slots=True)
class Test:
    """A test (an assessment row) as the answer path reads and writes it."""

    id: int
    user_id: int
    participation_id: int
    state: AssessmentState
    is_improving: bool
    current_challenge_id: str | None
    asked_at: dt.datetime | None  # when the question on screen was first shown
    created_at: dt.datetime
    progress: int

    @classmethod
    def of(cls, assessment: Assessment) -> Test:
        if assessment.participation_id is None:
            raise ValueError("a campaign test has a participation")
        return cls(
            assessment.id,
            assessment.user_id,
            assessment.participation_id,
            assessment.state,
            assessment.is_improving,
            assessment.current_challenge_id,
            assessment.current_challenge_asked_at,
            assessment.created_at,
            assessment.progress,
        )


@dataclass(frozen=True, slots=True)
class Spot:
    """A campaign code seen by the signed-in user: the campaign (None: no campaign has this
    code), their live participation in it, and their test in progress with its answer count."""

    campaign: CampaignRef | None
    participation_id: int | None
    participation_status: ParticipationStatus | None
    test: Test | None
    answer_count: int


@dataclass(frozen=True, slots=True)
class Place:
    """A spot where the user takes part: the campaign and their live participation in it."""

    campaign: CampaignRef
    participation_id: int
    participation_status: ParticipationStatus
    test: Test | None
    answer_count: int


def place_of(spot: Spot | None) -> Place | None:
    """The spot's place, when the code names a campaign the user takes part in."""
    if spot is None or spot.campaign is None or spot.participation_id is None:
        return None
    status = spot.participation_status
    if status is None:
        return None
    return Place(spot.campaign, spot.participation_id, status, spot.test, spot.answer_count)


_USER_COLUMNS = ("id", "first_name", "last_name", "email", "email_verified_at", "username",
                 "locale")  # fmt: skip
_SESSION_COLUMNS = ("id", "created_at", "expires_at", "password_change_required")
_CAMPAIGN_COLUMNS = ("id", "code", "title", "type", "content_version", "selector",
                     "organization_id", "archived_at")  # fmt: skip
_TEST_COLUMNS = ("id", "user_id", "participation_id", "state", "is_improving",
                 "current_challenge_id", "current_challenge_asked_at", "created_at", "progress")  # fmt: skip


def _spot_statement() -> Any:
    user_flags = [User.__mapper__.column_attrs[name].expression for name in ("is_member",
                  "is_instance_admin")]  # fmt: skip
    answer_count = (
        select(func.count())
        .select_from(_answers)
        .where(_answers.c.assessment_id == _assessments.c.id)
        .correlate(_assessments)
        .scalar_subquery()
    )
    return (
        select(
            *(_users.c[name] for name in _USER_COLUMNS),
            *user_flags,
            *(_sessions.c[name] for name in _SESSION_COLUMNS),
            *(_campaigns.c[name] for name in _CAMPAIGN_COLUMNS),
            _organizations.c.archived_at,
            _participations.c.id,
            _participations.c.status,
            *(_assessments.c[name] for name in _TEST_COLUMNS),
            answer_count,
        )
        .select_from(
            _sessions.join(_users, _users.c.id == _sessions.c.user_id)
            .outerjoin(_campaigns, _campaigns.c.code == bindparam("code"))
            .outerjoin(_organizations, _organizations.c.id == _campaigns.c.organization_id)
            .outerjoin(
                _participations,
                and_(
                    _participations.c.campaign_id == _campaigns.c.id,
                    _participations.c.user_id == _users.c.id,
                    _participations.c.is_improved.is_(False),
                    _participations.c.deleted_at.is_(None),
                ),
            )
            .outerjoin(
                _assessments,
                and_(
                    _assessments.c.participation_id == _participations.c.id,
                    _assessments.c.state == AssessmentState.STARTED,
                ),
            )
        )
        .where(
            _sessions.c.token_hash == bindparam("token_hash"),
            _sessions.c.revoked_at.is_(None),
            _sessions.c.expires_at > bindparam("now", type_=_sessions.c.expires_at.type),
        )
    )


_SPOT = Prepared("parcours_spot", _spot_statement())


def load_spot(
    session: Session, connection: Connection, token: str, code: str
) -> tuple[ReadSignedIn, Spot] | None:
    """Who the session `token` signs in (None: nobody: unknown, revoked or expired) and what
    they have at the campaign of `code` (a normalized code, or "" for none), in one statement.
    The user and their session become ORM objects of `session` if the request asks for them."""
    found = _SPOT.rows(connection, {"token_hash": token_hash(token), "code": code, "now": utcnow()})
    if not found:
        return None
    values = found[0]
    n_user, n_session = len(_USER_COLUMNS) + 2, len(_SESSION_COLUMNS)
    user_values = dict(zip((*_USER_COLUMNS, "is_member", "is_instance_admin"), values[:n_user],
                           strict=True))  # fmt: skip
    session_values = dict(zip(_SESSION_COLUMNS, values[n_user : n_user + n_session], strict=True))
    session_values.update(user_id=user_values["id"], token_hash=token_hash(token), revoked_at=None)
    signed_in = ReadSignedIn(session, user_values, session_values)
    rest = values[n_user + n_session :]
    campaign_part, rest = rest[: len(_CAMPAIGN_COLUMNS) + 1], rest[len(_CAMPAIGN_COLUMNS) + 1 :]
    participation_id, participation_status, rest = rest[0], rest[1], rest[2:]
    test_part, count = rest[: len(_TEST_COLUMNS)], rest[len(_TEST_COLUMNS)]
    campaign = CampaignRef(*campaign_part) if campaign_part[0] is not None else None
    test = Test(*test_part) if test_part[0] is not None else None
    return signed_in, Spot(campaign, participation_id, participation_status, test, count or 0)


# -- the engine's view of a test -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Given:
    """An answer of the test, as the engine and the checkpoint read it."""

    challenge_id: str
    result: AnswerResult
    value: str = ""


def _evidence_statement() -> Any:
    """The student's knowledge elements, then the test's answers (kind 0, then 1), in one
    statement. Enumerations are read as text: the two parts hold different ones."""
    knowledge = select(
        literal_column("0").label("kind"),
        _knowledge.c.skill_id,
        type_coerce(_knowledge.c.status, String),
        type_coerce(_knowledge.c.source, String),
        _knowledge.c.created_at,
        _knowledge.c.earned_pix,
        _knowledge.c.assessment_id,
        _knowledge.c.id,
    ).where(_knowledge.c.user_id == bindparam("user_id"))
    answers = select(
        literal_column("1"),
        _answers.c.challenge_id,
        type_coerce(_answers.c.result, String),
        null(),
        null(),
        null(),
        null(),
        _answers.c.id,
    ).where(_answers.c.assessment_id == bindparam("assessment_id"))
    union = union_all(knowledge, answers).subquery()
    return select(*union.c).order_by(union.c.kind, union.c.id)


_EVIDENCE = Prepared("parcours_evidence", _evidence_statement())
_KNOWLEDGE = select(
    _knowledge.c.skill_id,
    _knowledge.c.status,
    _knowledge.c.source,
    _knowledge.c.created_at,
    _knowledge.c.earned_pix,
    _knowledge.c.assessment_id,
).where(_knowledge.c.user_id == bindparam("user_id"))


@dataclass(slots=True)
class Loaded:
    """What the engine needs of a test: its content and its situation, with the answers."""

    campaign: CampaignRef
    test: Test
    content: CampaignContent
    situation: Situation
    answers: list[Given]


def load(session: Session, campaign: CampaignRef, test: Test, *, fresh: bool = False) -> Loaded:
    """The engine's view of `test`; `fresh`: opened by this request, nothing answered yet (its
    answers are not read)."""
    from campaigns.journey.services import campaign_content

    content = campaign_content(session, campaign)
    connection = session.connection()
    elements: list[tuple[Knowledge, int | None]] = []
    answers: list[Given] = []
    if fresh:
        rows: Any = connection.execute(_KNOWLEDGE, {"user_id": test.user_id})
        rows = ((0, *row) for row in rows)
    else:
        rows = _EVIDENCE.rows(connection, {"user_id": test.user_id, "assessment_id": test.id})
    for kind, key, status, source, created, pix, assessment_id, *_ in rows:
        if kind:
            answers.append(Given(key, AnswerResult(status)))
            continue
        status, source = getattr(status, "value", status), getattr(source, "value", source)
        elements.append((Knowledge(key, Status(status), Source(source), created, float(pix)),
                         assessment_id))  # fmt: skip
    recorded_here = frozenset(k.skill_id for k, a in elements if a == test.id)
    considered = [
        k
        for k, a in elements
        if a == test.id
        or not (
            test.is_improving
            and k.status is Status.INVALIDATED
            and k.created_at <= test.created_at - RETRY_AFTER
        )
    ]
    known = effective(considered, at=test.created_at)
    pack = content.pack
    steps = tuple(
        Step(pack.challenge_by_id[a.challenge_id], checking.Result(a.result.value))
        for a in answers
        if a.challenge_id in pack.challenge_by_id
    )
    situation = Situation(content.index, str(test.id), known, steps, recorded_here)
    return Loaded(campaign, test, content, situation, answers)


# -- writing a test ------------------------------------------------------------------------------


_RECORD_KNOWLEDGE = insert(_knowledge)
_ADVANCE = Prepared("parcours_advance", (
    update(_assessments)
    .where(_assessments.c.id == bindparam("test_id"))
    .values(
        current_challenge_id=bindparam("challenge_id"),
        current_challenge_asked_at=None,
        progress=bindparam("progress"),
        updated_at=bindparam("now", type_=_assessments.c.updated_at.type),
    )
))  # fmt: skip
_FINISH = (
    update(_assessments)
    .where(_assessments.c.id == bindparam("test_id"))
    .values(
        state=AssessmentState.COMPLETED,
        current_challenge_id=None,
        completed_at=bindparam("now", type_=_assessments.c.completed_at.type),
        updated_at=bindparam("now", type_=_assessments.c.updated_at.type),
        progress=100,
    )
)
_TO_SHARE = (
    update(_participations)
    .where(
        _participations.c.id == bindparam("participation_id"),
        _participations.c.status == ParticipationStatus.STARTED,
    )
    .values(status=ParticipationStatus.TO_SHARE)
)
_START_CLOCK = (
    update(_assessments)
    .where(
        _assessments.c.id == bindparam("test_id"),
        _assessments.c.current_challenge_asked_at.is_(None),
    )
    .values(current_challenge_asked_at=bindparam("now", type_=_assessments.c.updated_at.type))
)


def _record(
    connection: Connection, state: Loaded, new: Sequence[NewKnowledge], answer_id: int | None
) -> None:
    """Store the knowledge elements `new` (one statement, however many)."""
    if not new:
        return
    now = utcnow()
    connection.execute(
        _RECORD_KNOWLEDGE,
        [
            {
                "user_id": state.test.user_id,
                "assessment_id": state.test.id,
                "answer_id": answer_id if element.source is Source.DIRECT else None,
                "skill_id": element.skill.id,
                "tube_id": element.skill.tube_id,
                "competence_id": element.skill.competence_id,
                "status": KnowledgeElementStatus(element.status.value),
                "source": KnowledgeElementSource(element.source.value),
                "earned_pix": Decimal(str(round(element.earned_pix, 3))),
                "created_at": now,
            }
            for element in new
        ],
    )


def advance(session: Session, state: Loaded) -> Challenge | None:
    """Choose the next question and store it as the one on screen; None: the test is over
    (then recorded as such, with the knowledge its end concludes)."""
    connection = session.connection()
    selector = SELECTORS[state.campaign.selector]
    challenge = selector.next_challenge(state.situation)
    test = state.test
    now = utcnow()
    if challenge is None:
        _record(connection, state, selector.record_end(state.situation), None)
        finish(connection, test)
        state.test = replace(test, state=AssessmentState.COMPLETED, current_challenge_id=None,
                             progress=100)  # fmt: skip
        return None
    # The bar the student sees only moves forward, and reaches 100 % only at the end.
    progress = max(test.progress, min(99, rounded_percent(selector.progress(state.situation))))
    _ADVANCE.rows(
        connection, {"test_id": test.id, "challenge_id": challenge.id, "progress": progress,
                     "now": now},
    )  # fmt: skip
    state.test = replace(test, current_challenge_id=challenge.id, asked_at=None, progress=progress)
    return challenge


def finish(connection: Connection, test: Test) -> None:
    """The test is over; its participation's results are ready to send."""
    connection.execute(_FINISH, {"test_id": test.id, "now": utcnow()})
    connection.execute(_TO_SHARE, {"participation_id": test.participation_id})


def current_challenge(
    session: Session, campaign: CampaignRef, test: Test, *, fresh: bool = False
) -> tuple[Challenge | None, Test]:
    """The question on screen: the stored one, or the next one chosen now and stored (None once
    the test is over, which then completes it); with the test as it now stands. `fresh`: see
    `load`."""
    from campaigns.journey.services import campaign_content

    if test.state is not AssessmentState.STARTED:
        return None, test
    if test.current_challenge_id:
        challenge = campaign_content(session, campaign).pack.challenge_by_id.get(
            test.current_challenge_id
        )
        if challenge is not None:
            return challenge, test
    state = load(session, campaign, test, fresh=fresh)
    return advance(session, state), state.test


def start_clock(session: Session, test: Test, challenge: Challenge) -> Test:
    """A timed question's clock starts when the student first sees it (not when it was chosen:
    the student may be reading a checkpoint, or away)."""
    if not challenge.is_timed or test.asked_at is not None:
        return test
    now = utcnow()
    session.connection().execute(_START_CLOCK, {"test_id": test.id, "now": now})
    return replace(test, asked_at=now)


@dataclass(frozen=True)
class Answered:
    result: checking.Result
    checkpoint: bool  # a checkpoint is due before the next question
    finished: bool
    repeated: bool  # the same answer submitted twice: stored once


ANSWER_COLUMNS = (
    "assessment_id", "challenge_id", "value", "result", "time_spent_seconds", "created_at"
)  # fmt: skip


def _record_answer_statement(dialect: str) -> Any:
    """The answer, unless this test has one for this question already (its id, or no row)."""
    return (
        upsert(dialect, _answers)
        .values({name: bindparam(name, type_=_answers.c[name].type) for name in ANSWER_COLUMNS})
        .on_conflict_do_nothing(index_elements=["assessment_id", "challenge_id"])
        .returning(_answers.c.id)
    )


_RECORD_ANSWER = Prepared("parcours_answer", _record_answer_statement("postgresql"),
                          elsewhere=_record_answer_statement("sqlite"))  # fmt: skip
_WAS_ANSWERED = select(_answers.c.id).where(
    _answers.c.assessment_id == bindparam("test_id"),
    _answers.c.challenge_id == bindparam("challenge_id"),
)
_LAST_AND_COUNT = select(
    select(_answers.c.challenge_id)
    .where(_answers.c.assessment_id == bindparam("test_id"))
    .order_by(_answers.c.id.desc())
    .limit(1)
    .scalar_subquery(),
    select(func.count())
    .select_from(_answers)
    .where(_answers.c.assessment_id == bindparam("test_id"))
    .scalar_subquery(),
)


def was_answered(connection: Connection, test_id: int, challenge_id: str) -> bool:
    found = connection.execute(_WAS_ANSWERED, {"test_id": test_id, "challenge_id": challenge_id})
    return found.first() is not None


def answer(
    session: Session,
    campaign: CampaignRef,
    test: Test,
    *,
    challenge_id: str,
    value: str,
    skipped: bool = False,
    now: dt.datetime | None = None,
) -> Answered:
    """Record the answer to the question on screen, the knowledge it brings, and choose the
    next question. A second submission of the same answer changes nothing."""
    now = now or utcnow()
    connection = session.connection()
    if test.state is not AssessmentState.STARTED:
        if was_answered(connection, test.id, challenge_id):
            return _repeated(connection, test, challenge_id)
        raise NotCurrent("the test is over", code="over")
    if challenge_id != test.current_challenge_id:
        if was_answered(connection, test.id, challenge_id):
            return _repeated(connection, test, challenge_id)
        raise NotCurrent("this is not the current question", code="not_current")
    state = load(session, campaign, test)
    challenge = state.content.pack.challenge_by_id[challenge_id]
    value = value[: checking.MAX_ANSWER_LENGTH * 8]
    if challenge.is_timed and test.asked_at is None:
        raise NotCurrent("this timed question was never shown", code="not_shown")
    asked_at = test.asked_at or now
    if skipped:
        result = checking.Result.SKIPPED
    elif (
        challenge.timer is not None
        and now > asked_at + dt.timedelta(seconds=challenge.timer) + TIMER_GRACE
    ):
        result = checking.Result.TIMED_OUT
    else:
        result = checking.check(challenge, value)
    stored = AnswerResult(result.value)
    inserted = _RECORD_ANSWER.rows(
        connection,
        {
            "assessment_id": test.id,
            "challenge_id": challenge_id,
            "value": "" if skipped else value,
            "result": stored,
            "time_spent_seconds": max(0, int((now - asked_at).total_seconds())),
            "created_at": now,
        },
    )
    if not inserted:  # the same answer, submitted twice at once
        return _repeated(connection, test, challenge_id)
    answer_id = inserted[0][0]
    state.answers.append(Given(challenge_id, stored))
    situation = state.situation
    situation = Situation(situation.profile, situation.assessment_id, situation.known,
                          (*situation.steps, Step(challenge, result)), situation.recorded_here)  # fmt: skip
    selector = SELECTORS[campaign.selector]
    new = selector.record_answer(situation)
    _record(connection, state, new, answer_id)
    state.situation = situation  # the same one when nothing was recorded: the selector
    if new:  # reads it once. What was just recorded counts for the next choice.
        known = dict(situation.known)
        for element in new:
            known[element.skill.id] = Knowledge(
                element.skill.id, element.status, element.source, now, element.earned_pix
            )
        state.situation = Situation(situation.profile, situation.assessment_id, known,
                                    situation.steps,
                                    situation.recorded_here | {e.skill.id for e in new})  # fmt: skip
    nxt = advance(session, state)
    return Answered(result, is_checkpoint(len(state.answers)) or nxt is None, nxt is None, False)


def _repeated(connection: Connection, test: Test, challenge_id: str) -> Answered:
    """A second submission: nothing stored, but the student lands where the first one led
    (the checkpoint, when it was the fifth answer)."""
    state = connection.execute(
        select(_assessments.c.state).where(_assessments.c.id == test.id)
    ).scalar_one()
    last, count = connection.execute(_LAST_AND_COUNT, {"test_id": test.id}).one()
    finished = AssessmentState(getattr(state, "value", state)) is not AssessmentState.STARTED
    checkpoint = last == challenge_id and (is_checkpoint(count or 0) or finished)
    return Answered(checking.Result.KO, checkpoint, finished, repeated=True)


# -- the checkpoint ------------------------------------------------------------------------------


_LATEST_TEST = Prepared("parcours_latest_test", (
    select(
        _assessments.c.state,
        _assessments.c.progress,
        _answers.c.challenge_id,
        _answers.c.result,
        _answers.c.value,
    )
    .select_from(_assessments.outerjoin(_answers, _answers.c.assessment_id == _assessments.c.id))
    .where(
        _assessments.c.id
        == select(func.max(_assessments.c.id))
        .where(_assessments.c.participation_id == bindparam("participation_id"))
        .scalar_subquery()
    )
    .order_by(_answers.c.id)
))  # fmt: skip


@dataclass(frozen=True, slots=True)
class LatestTest:
    state: AssessmentState
    progress: int
    answers: list[Given]


def latest_test(connection: Connection, participation_id: int) -> LatestTest | None:
    """The participation's latest test (in progress or over) with its answers, in order."""
    rows = _LATEST_TEST.rows(connection, {"participation_id": participation_id})
    if not rows:
        return None
    answers = [Given(c, r, v) for _, _, c, r, v in rows if c is not None]
    return LatestTest(rows[0][0], rows[0][1], answers)
