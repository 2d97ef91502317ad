"""The student journey: taking part in a campaign, answering, sharing. Services take the session
first, flush, never commit.

The test is stored, not kept in memory: the question on screen is `Assessment.current_challenge_id`
(so a reload, a second tab or another device shows the same one), answers are rows (one per
challenge, by constraint), knowledge elements are rows. Every step rebuilds the engine's view from
them, so any process can serve any request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, select
from sqlalchemy.orm import Session

from campaigns.journey import answering
from campaigns.journey.answering import RETRY_AFTER
from campaigns.shared import events
from campaigns.shared.content import active_pack, pack_version
from campaigns.shared.errors import InvalidInput, ServiceError
from campaigns.shared.events import Event
from campaigns.shared.models import (
    Answer,
    AnswerResult,
    Assessment,
    AssessmentState,
    AssessmentType,
    Campaign,
    CampaignSkill,
    CampaignType,
    ChallengeReport,
    KnowledgeElement,
    KnowledgeElementSource,
    KnowledgeElementStatus,
    Learner,
    Organization,
    Participation,
    ParticipationStatus,
    User,
)
from config.db import expire_loaded, table_of, upsert, utcnow, written
from engine.content import Challenge, ContentPack
from engine.knowledge import (
    FORGET_FAILURES_AFTER,
    Knowledge,
    Source,
    Status,
    effective,
)
from engine.scoring import (
    CampaignResult,
    Profile,
    campaign_result,
    is_checkpoint,
    profile,
)
from engine.selection import ProfileIndex

NotCurrent = answering.NotCurrent
Answered = answering.Answered


class NotFound(ServiceError):
    pass


class NotAllowed(ServiceError):
    pass


class ContentUnavailable(ServiceError):
    """The content version a campaign froze is not in the database."""


# -- campaigns and their content ------------------------------------------------------------------


_CAMPAIGN_OF_CODE = select(Campaign).where(Campaign.code == bindparam("code"))


def campaign_by_code(session: Session, code: str) -> Campaign | None:
    return session.scalars(_CAMPAIGN_OF_CODE, {"code": code}).one_or_none()


@dataclass(frozen=True)
class CampaignContent:
    pack: ContentPack
    index: ProfileIndex

    @property
    def skills(self) -> Sequence[object]:
        return tuple(self.index.skills.values())


PROFILE_CACHE_SIZE = 512
_profiles: dict[tuple[int, str], CampaignContent] = {}
_profiles_lock = threading.Lock()


def campaign_content(
    session: Session, campaign: Campaign | answering.CampaignRef
) -> CampaignContent:
    """The pack version the campaign froze and its skills, indexed (cached per process)."""
    key = (campaign.id, campaign.content_version or "")
    with _profiles_lock:
        cached = _profiles.get(key)
    if cached is not None:
        return cached
    if campaign.content_version and "@" in campaign.content_version:
        pack_id, version = campaign.content_version.split("@", 1)
        pack = pack_version(session, pack_id, version)
    else:
        pack = active_pack(session)
    skill_ids = session.scalars(
        select(CampaignSkill.skill_id).where(CampaignSkill.campaign_id == campaign.id)
    ).all()
    if pack is None or any(s not in pack.skill_by_id for s in skill_ids):
        # Never a silent replacement: the campaign's figures would change under the teacher.
        raise ContentUnavailable(
            f"content {campaign.content_version} of campaign {campaign.id} is not imported"
        )
    skills = [pack.skill_by_id[s] for s in skill_ids]
    content = CampaignContent(pack, ProfileIndex.build(skills, locale=pack.locale))
    with _profiles_lock:
        if len(_profiles) >= PROFILE_CACHE_SIZE:
            _profiles.pop(next(iter(_profiles)))
        _profiles[key] = content
    return content


# -- taking part ----------------------------------------------------------------------------------


def live_participation(session: Session, campaign: Campaign, user: User) -> Participation | None:
    return session.scalars(
        select(Participation).where(
            Participation.campaign_id == campaign.id,
            Participation.user_id == user.id,
            Participation.is_improved.is_(False),
            Participation.deleted_at.is_(None),
        )
    ).one_or_none()


@dataclass(frozen=True)
class Place:
    """A campaign seen by one user: their live participation in it and their test in progress."""

    campaign: Campaign
    organization: Organization  # held here, so `ensure_open` finds it without a query
    participation: Participation | None
    assessment: Assessment | None  # the participation's started test, if any
    answer_count: int  # answers in that test


def _place_query() -> Select[Any]:
    answers = (
        select(func.count())
        .select_from(Answer)
        .where(Answer.assessment_id == Assessment.id)
        .correlate(Assessment)
        .scalar_subquery()
    )
    return (
        select(Campaign, Organization, Participation, Assessment, answers)
        .join(Organization, Organization.id == Campaign.organization_id)
        .outerjoin(
            Participation,
            (Participation.campaign_id == Campaign.id)
            & (Participation.user_id == bindparam("user_id"))
            & Participation.is_improved.is_(False)
            & Participation.deleted_at.is_(None),
        )
        .outerjoin(
            Assessment,
            (Assessment.participation_id == Participation.id)
            & (Assessment.state == AssessmentState.STARTED),
        )
        .where(Campaign.code == bindparam("code"))
    )


_PLACE = _place_query()  # built once: every test page runs it


def place(session: Session, code: str, user: User) -> Place | None:
    """Everything a test page needs about a campaign code and the user, in one query."""
    row = session.execute(_PLACE, {"code": code, "user_id": user.id}).first()
    if row is None:
        return None
    campaign, organization, participation, assessment, count = tuple(row)
    return Place(campaign, organization, participation, assessment, count or 0)


def ensure_open(session: Session, campaign: Campaign) -> None:
    """Archived campaigns, and campaigns of archived organizations, accept nothing more."""
    organization = session.get(Organization, campaign.organization_id)
    if (
        campaign.archived_at is not None
        or organization is None
        or organization.archived_at is not None
    ):
        raise NotAllowed("this campaign is archived", code="archived")


def join(
    session: Session, campaign: Campaign, user: User, *, external_id: str | None = None
) -> Participation:
    """The user's live participation in the campaign, created if needed (a double submission
    finds the one the first request created); the listeners of `Event.STARTED` run when it is."""
    ensure_open(session, campaign)
    existing = live_participation(session, campaign, user)
    if existing is not None:
        return existing
    return _start(session, campaign, user, external_id)


_LEARNER_ID = select(Learner.id).where(
    Learner.organization_id == bindparam("organization_id"), Learner.user_id == bindparam("user_id")
)


def _start(
    session: Session, campaign: Campaign, user: User, external_id: str | None
) -> Participation:
    """A new participation (`join` without its checks: the caller made them)."""
    if campaign.external_id_label and not (external_id or "").strip():
        raise InvalidInput("the campaign asks for an identifier", code="external_id")
    learner_id = session.scalar(
        _LEARNER_ID, {"organization_id": campaign.organization_id, "user_id": user.id}
    )
    status = (
        ParticipationStatus.TO_SHARE
        if campaign.type is CampaignType.PROFILES_COLLECTION
        else ParticipationStatus.STARTED
    )
    values = {
        "campaign_id": campaign.id,
        "user_id": user.id,
        "learner_id": learner_id,
        "participant_external_id": (external_id or "").strip()[:255] or None,
        "status": status,
        "created_at": utcnow(),
    }
    # A live participation of this user, or of this school learner, may exist already (a double
    # submission, the learner's other account): the unique indexes decide, nothing inserted.
    listeners = events.listened(Event.STARTED)
    with session.begin_nested() if listeners else contextlib.nullcontext():
        new_id = session.execute(
            _new_participation(session.get_bind().dialect.name), values
        ).scalar()
        if new_id is None:
            existing = live_participation(session, campaign, user)
            if existing is None:
                raise NotAllowed(
                    "this student already takes part in the campaign with another account",
                    code="learner_taken",
                )
            return existing
        participation = written(Participation, new_id, values)
        # Listeners get the participation as the session holds it; if one fails, the savepoint
        # rolls the row back and the session lets go of the object too.
        session.add(participation)
        if listeners:
            try:
                events.publish(session, Event.STARTED, participation)
            except BaseException:
                session.expunge(participation)
                raise
    return participation


@functools.cache
def _new_participation(dialect: str) -> Any:
    """A participation's row, unless a live one of the same user or learner holds the campaign
    (no row back)."""
    table = table_of(Participation)
    columns = ("campaign_id", "user_id", "learner_id", "participant_external_id", "status")
    return (
        upsert(dialect, table)
        .values(
            {name: bindparam(name, type_=table.c[name].type) for name in columns}
            | {"created_at": bindparam("created_at", type_=table.c.created_at.type)}
        )
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )


def school_campaigns(session: Session, user: User) -> list[Campaign]:
    """The open campaigns of the schools whose learner list holds `user` (a student matched by
    their school, e.g. arriving from their ENT): offered on "Mes parcours", newest first."""
    schools = select(Learner.organization_id).where(
        Learner.user_id == user.id, Learner.is_disabled.is_(False)
    )
    return list(
        session.scalars(
            select(Campaign)
            .join(Organization, Organization.id == Campaign.organization_id)
            .where(
                Campaign.organization_id.in_(schools),
                Campaign.archived_at.is_(None),
                Organization.archived_at.is_(None),
            )
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
            .limit(50)
        )
    )


def has_participated(session: Session, user: User) -> bool:
    return (
        session.scalar(select(Participation.id).where(Participation.user_id == user.id).limit(1))
        is not None
    )


class NextPage(enum.StrEnum):
    """Where the journey takes a student next (each one a page of `journey.views`)."""

    EXTERNAL_ID = "external_id"  # the campaign asks for an identifier before anything else
    RULES = "rules"  # a first participation ever: how the test works
    QUESTION = "question"
    RESULTS = "results"
    COLLECTION = "collection"  # profiles collections have no test


def next_step(campaign: Campaign, participation: Participation, *, first: bool = False) -> NextPage:
    if campaign.type is CampaignType.PROFILES_COLLECTION:
        return NextPage.COLLECTION
    if participation.status is not ParticipationStatus.STARTED:
        return NextPage.RESULTS
    return NextPage.RULES if first else NextPage.QUESTION


_LIVE_OR_FIRST = (
    select(Participation)
    .where(Participation.user_id == bindparam("user_id"))
    .order_by(
        case(
            (
                and_(
                    Participation.campaign_id == bindparam("campaign_id"),
                    Participation.is_improved.is_(False),
                    Participation.deleted_at.is_(None),
                ),
                0,
            ),
            else_=1,
        )
    )
    .limit(1)
)


def _live_or_first(
    session: Session, campaign: Campaign, user: User
) -> tuple[Participation | None, bool]:
    """The user's live participation in the campaign, and whether they never took part in any
    campaign: one query over the user's participations, the live one of this campaign first."""
    found = session.scalars(
        _LIVE_OR_FIRST, {"user_id": user.id, "campaign_id": campaign.id}
    ).one_or_none()
    if found is None:
        return None, True
    is_live = (
        found.campaign_id == campaign.id and not found.is_improved and found.deleted_at is None
    )
    return (found if is_live else None), False


def enter(
    session: Session, campaign: Campaign, user: User, *, external_id: str | None = None
) -> tuple[Participation | None, NextPage]:
    """ "Je commence": the user's participation, started if needed, and the page it leads to.
    No participation yet and the campaign asks for an identifier nobody gave: (None,
    EXTERNAL_ID)."""
    ensure_open(session, campaign)
    existing, first = _live_or_first(session, campaign, user)
    if existing is None and campaign.external_id_label and not (external_id or "").strip():
        return None, NextPage.EXTERNAL_ID
    participation = existing or _start(session, campaign, user, external_id)
    return participation, next_step(campaign, participation, first=first)


def open_assessment(
    session: Session, participation: Participation, *, improving: bool = False
) -> Assessment:
    """The participation's test in progress, started if needed."""
    return opened_assessment(session, participation, improving=improving)[0]


def opened_assessment(
    session: Session, participation: Participation, *, improving: bool = False
) -> tuple[Assessment, bool]:
    """The participation's test in progress and whether this call opened it (inserted first: a
    test is opened once and read many times by the pages that find it with their own query; a
    test this call opened has no answers yet)."""
    values = {
        "user_id": participation.user_id,
        "participation_id": participation.id,
        "type": AssessmentType.CAMPAIGN,
        "state": AssessmentState.STARTED,
        "is_improving": improving,
        "created_at": (now := utcnow()),
        "updated_at": now,
    }
    new_id = session.execute(_new_assessment(session.get_bind().dialect.name), values).scalar()
    if new_id is None:  # open already (a parallel request may have opened it)
        found = session.scalars(_STARTED_ASSESSMENT, {"participation_id": participation.id}).one()
        return found, False
    assessment = written(Assessment, new_id, values)
    session.add(assessment)
    return assessment, True


_STARTED_ASSESSMENT = select(Assessment).where(
    Assessment.participation_id == bindparam("participation_id"),
    Assessment.state == AssessmentState.STARTED,
)


@functools.cache
def _new_assessment(dialect: str) -> Any:
    """A test's row, unless the participation has one in progress (no row back)."""
    table = table_of(Assessment)
    columns = ("user_id", "participation_id", "type", "state", "is_improving")
    return (
        upsert(dialect, table)
        .values(
            {name: bindparam(name, type_=table.c[name].type) for name in columns}
            | {
                "created_at": bindparam("created_at", type_=table.c.created_at.type),
                "updated_at": bindparam("updated_at", type_=table.c.updated_at.type),
            }
        )
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )


# -- the test ------------------------------------------------------------------------------------


def _knowledge(session: Session, user_id: int) -> list[tuple[Knowledge, int | None]]:
    rows = session.execute(
        select(
            KnowledgeElement.skill_id,
            KnowledgeElement.status,
            KnowledgeElement.source,
            KnowledgeElement.created_at,
            KnowledgeElement.earned_pix,
            KnowledgeElement.assessment_id,
        ).where(KnowledgeElement.user_id == user_id)
    )
    return [
        (
            Knowledge(skill, Status(status.value), Source(source.value), created, float(pix)),
            assessment_id,
        )
        for skill, status, source, created, pix, assessment_id in rows
    ]


def user_knowledge(
    session: Session, user_id: int, *, at: dt.datetime | None = None
) -> dict[str, Knowledge]:
    return effective((k for k, _ in _knowledge(session, user_id)), at=at)


def campaign_ref(session: Session, campaign: Campaign) -> answering.CampaignRef:
    """What the answer path reads of `campaign` (`answering.CampaignRef`)."""
    organization = session.get(Organization, campaign.organization_id)
    return answering.CampaignRef(
        campaign.id,
        campaign.code,
        campaign.title,
        campaign.type,
        campaign.content_version,
        campaign.selector,
        campaign.organization_id,
        campaign.archived_at,
        organization.archived_at if organization is not None else None,
    )


def _campaign_of(session: Session, assessment: Assessment) -> Campaign:
    participation = session.get(Participation, assessment.participation_id)
    campaign = session.get(Campaign, participation.campaign_id) if participation else None
    if campaign is None:
        raise NotFound("no such campaign")
    return campaign


# The answer path itself is `answering` (plain Core); these wrap it for callers holding ORM
# objects: pending changes are flushed first, and the objects it wrote are read again.


def _wrote(session: Session, assessment: Assessment) -> None:
    expire_loaded(session, Assessment, assessment.id)
    if assessment.participation_id is not None:
        expire_loaded(session, Participation, assessment.participation_id)


def current_challenge(
    session: Session, assessment: Assessment, *, fresh: bool = False
) -> Challenge | None:
    """The question on screen: the stored one, or the next one chosen now and stored. None once
    the test is over (which then completes it). `fresh`: see `answering.load`."""
    session.flush()
    if assessment.state is not AssessmentState.STARTED:
        return None
    campaign = campaign_ref(session, _campaign_of(session, assessment))
    challenge, _ = answering.current_challenge(
        session, campaign, answering.Test.of(assessment), fresh=fresh
    )
    _wrote(session, assessment)
    return challenge


def start_clock(session: Session, assessment: Assessment, challenge: Challenge) -> None:
    """A timed question's clock starts when the student first sees it."""
    session.flush()
    answering.start_clock(session, answering.Test.of(assessment), challenge)
    _wrote(session, assessment)


def submit_answer(
    session: Session,
    assessment: Assessment,
    *,
    challenge_id: str,
    value: str,
    skipped: bool = False,
    now: dt.datetime | None = None,
) -> Answered:
    """Record the answer to the question on screen, the knowledge it brings, and choose the
    next question. A second submission of the same answer changes nothing."""
    session.flush()
    campaign = campaign_ref(session, _campaign_of(session, assessment))
    answered = answering.answer(
        session,
        campaign,
        answering.Test.of(assessment),
        challenge_id=challenge_id,
        value=value,
        skipped=skipped,
        now=now,
    )
    _wrote(session, assessment)
    return answered


def answer_count(session: Session, assessment: Assessment) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Answer).where(Answer.assessment_id == assessment.id)
        )
        or 0
    )


def was_answered(session: Session, assessment: Assessment, challenge_id: str) -> bool:
    return (
        session.scalar(
            select(Answer.id).where(
                Answer.assessment_id == assessment.id, Answer.challenge_id == challenge_id
            )
        )
        is not None
    )


def report_problem(
    session: Session,
    assessment: Assessment,
    user: User,
    *,
    challenge_id: str,
    category: str,
    comment: str,
) -> ChallengeReport:
    report = ChallengeReport(
        assessment_id=assessment.id,
        user_id=user.id,
        challenge_id=challenge_id[:64],
        category=category[:32],
        comment=comment.strip()[:2000],
    )
    session.add(report)
    session.flush()
    return report


# -- results and sharing -------------------------------------------------------------------------


def participation_result(
    session: Session, participation: Participation
) -> tuple[CampaignResult, Profile]:
    campaign = session.get(Campaign, participation.campaign_id)
    if campaign is None:
        raise NotFound("no such campaign")
    content = campaign_content(session, campaign)
    known = user_knowledge(session, participation.user_id)
    return (
        campaign_result(content.pack, content.index.skills.values(), known),
        profile(content.pack, known),
    )


def answered_last(session: Session, participation_id: int, challenge_id: str) -> bool:
    """Whether `challenge_id` is the last question answered in the participation's latest test
    (the answer that ended it, when the test is over)."""
    last = session.scalar(
        select(Answer.challenge_id)
        .join(Assessment, Assessment.id == Answer.assessment_id)
        .where(Assessment.participation_id == participation_id)
        .order_by(Answer.id.desc())
        .limit(1)
    )
    return last == challenge_id


def skipped_everything(session: Session, participation: Participation) -> bool:
    """Every question of the participation's tests passed (or left to time out): its results
    measure nothing, and the student is told so rather than shown a mastery figure."""
    asked, answered = session.execute(
        select(
            func.count(Answer.id),
            func.count(Answer.id).filter(
                Answer.result.not_in((AnswerResult.SKIPPED, AnswerResult.TIMED_OUT))
            ),
        )
        .join(Assessment, Assessment.id == Answer.assessment_id)
        .where(Assessment.participation_id == participation.id)
    ).one()
    return asked > 0 and answered == 0


def share(session: Session, participation: Participation) -> Participation:
    """Send the results to the organization: the figures are frozen now, and the listeners of
    `Event.SHARED` run in the same transaction (a failing one undoes the share). Idempotent: a
    second call changes nothing and calls nobody."""
    # Read under a row lock: of two shares at once, the second waits and finds it shared.
    session.scalars(
        select(Participation)
        .where(Participation.id == participation.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if participation.status is ParticipationStatus.SHARED:
        return participation
    if participation.status is not ParticipationStatus.TO_SHARE:
        raise NotAllowed("the test is not finished", code="not_finished")
    campaign = session.get(Campaign, participation.campaign_id)
    if campaign is None:
        raise NotFound("no such campaign")
    ensure_open(session, campaign)
    result, scores = participation_result(session, participation)
    snapshot = result.as_dict()
    snapshot["profile"] = {
        "pix": scores.pix,
        "certifiable": scores.is_certifiable,
        "certifiable_competences": scores.certifiable_competences,
        "competences": {
            c.competence_id: {"pix": c.pix, "level": c.level} for c in scores.competences
        },
    }

    def freeze() -> None:
        participation.status = ParticipationStatus.SHARED
        participation.shared_at = utcnow()
        participation.mastery_rate = Decimal(str(round(result.mastery_rate, 4)))
        participation.validated_skills_count = result.overall.validated
        participation.pix_score = scores.pix
        participation.shared_results = snapshot
        session.flush()

    if not events.listened(Event.SHARED):
        freeze()
        return participation
    with session.begin_nested():  # a listener that fails leaves the participation unshared
        freeze()
        events.publish(session, Event.SHARED, participation)
    return participation


def can_retry(
    participation: Participation, campaign: Campaign, *, now: dt.datetime | None = None
) -> bool:
    now = now or utcnow()
    return (
        campaign.multiple_sendings
        and campaign.archived_at is None
        and participation.status is ParticipationStatus.SHARED
        and participation.shared_at is not None
        and participation.shared_at <= now - RETRY_AFTER
        and (participation.mastery_rate is None or participation.mastery_rate < 1)
    )


def retry(
    session: Session, participation: Participation, campaign: Campaign, *, reset: bool = False
) -> Participation:
    """ "Repasser mon parcours": a new participation; with `reset`, the campaign's skills are
    forgotten first (reset knowledge elements) so that every question may come back."""
    if not can_retry(participation, campaign):
        raise NotAllowed("this participation cannot be taken again yet", code="retry")
    with session.begin_nested():  # a failing listener of the new start undoes it all
        participation.is_improved = True
        session.flush()
        if reset:
            content = campaign_content(session, campaign)
            now = utcnow()
            for skill in content.index.skills.values():
                session.add(
                    KnowledgeElement(
                        user_id=participation.user_id,
                        assessment_id=None,
                        skill_id=skill.id,
                        tube_id=skill.tube_id,
                        competence_id=skill.competence_id,
                        status=KnowledgeElementStatus.RESET,
                        source=KnowledgeElementSource.DIRECT,
                        earned_pix=Decimal(0),
                        created_at=now,
                    )
                )
        user = session.get(User, participation.user_id)
        if user is None:
            raise NotFound("no such user")
        return join(session, campaign, user, external_id=participation.participant_external_id)


def can_improve(session: Session, participation: Participation, campaign: Campaign) -> bool:
    """ "Améliorer mes résultats": before sending, failures at least 4 days old may be asked
    again (the reference's rule; a failure just corrected at a checkpoint is not)."""
    if campaign.type is not CampaignType.ASSESSMENT:
        return False
    if participation.status is not ParticipationStatus.TO_SHARE:
        return False
    skills = set(campaign_content(session, campaign).index.skills)
    old = utcnow() - RETRY_AFTER
    return any(
        k.status is Status.INVALIDATED and k.created_at <= old and k.skill_id in skills
        for k in user_knowledge(session, participation.user_id).values()
    )


def improve(session: Session, participation: Participation) -> Assessment:
    campaign = session.get(Campaign, participation.campaign_id)
    if campaign is None or not can_improve(session, participation, campaign):
        raise NotAllowed("there is nothing to improve", code="improve")
    participation.status = ParticipationStatus.STARTED
    session.flush()
    return open_assessment(session, participation, improving=True)


__all__ = ["FORGET_FAILURES_AFTER", "ServiceError", "is_checkpoint"]
