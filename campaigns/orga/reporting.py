"""What a campaign's page shows teachers: figures, activity, participants, one participant,
collective results and the analysis. Services take the session first and never write.

Only live participations count (`is_improved = false AND deleted_at IS NULL`: one per user and
campaign). Results reach the organization only when shared: everything about results reads the
snapshot frozen by `journey.share` (`mastery_rate`, `shared_results`) or, for the analysis, the
knowledge elements as they were at the share date — never a student's current knowledge.

A campaign may have tens of thousands of participations: lists are paginated in SQL (one query
per page, names joined), collective results stream the frozen snapshots in batches and aggregate
as they go, the analysis is one grouped query that returns a few hundred rows whatever the size
of the campaign.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from campaigns.journey import services as journey
from campaigns.shared import pagination
from campaigns.shared.models import (
    Assessment,
    AssessmentState,
    Campaign,
    CampaignType,
    KnowledgeElement,
    KnowledgeElementSource,
    KnowledgeElementStatus,
    Learner,
    Participation,
    ParticipationStatus,
    User,
)
from config.db import utcnow
from engine.content import ContentPack, Tutorial

PARIS = ZoneInfo("Europe/Paris")
BATCH_SIZE = 1000
PER_PAGE_CHOICES = (10, 25, 50)
DEFAULT_PER_PAGE = PER_PAGE_CHOICES[0]
GAP_FILLED_DAYS = 92  # activity charts show empty days when the campaign spans at most this


def _live(campaign_id: int) -> ColumnElement[bool]:
    return and_(
        Participation.campaign_id == campaign_id,
        Participation.is_improved.is_(False),
        Participation.deleted_at.is_(None),
    )


def _shared(campaign_id: int) -> ColumnElement[bool]:
    return and_(_live(campaign_id), Participation.status == ParticipationStatus.SHARED)


# -- figures and activity ------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """Live participations of a campaign by status."""

    started: int = 0
    to_share: int = 0
    shared: int = 0

    @property
    def participants(self) -> int:
        return self.started + self.to_share + self.shared


def figures(session: Session, campaign: Campaign) -> Figures:
    rows = session.execute(
        select(Participation.status, func.count())
        .where(_live(campaign.id))
        .group_by(Participation.status)
    )
    counts = {status: count for status, count in rows}
    return Figures(
        started=counts.get(ParticipationStatus.STARTED, 0),
        to_share=counts.get(ParticipationStatus.TO_SHARE, 0),
        shared=counts.get(ParticipationStatus.SHARED, 0),
    )


@dataclass(frozen=True)
class Day:
    date: dt.date
    started: int  # participations created that day (Europe/Paris)
    shared: int  # results received that day


def activity(session: Session, campaign: Campaign) -> list[Day]:
    """Participations started and results received per day (Europe/Paris dates), oldest first.
    Days without activity are included when the campaign spans at most GAP_FILLED_DAYS days.

    Two timestamps per participation are streamed and counted as they come (the time zone
    arithmetic stays the same on SQLite and PostgreSQL)."""
    started: Counter[dt.date] = Counter()
    shared: Counter[dt.date] = Counter()
    rows = session.execute(
        select(Participation.created_at, Participation.shared_at)
        .where(_live(campaign.id))
        .execution_options(yield_per=BATCH_SIZE * 5)
    )
    for created_at, shared_at in rows:
        started[created_at.astimezone(PARIS).date()] += 1
        if shared_at is not None:
            shared[shared_at.astimezone(PARIS).date()] += 1
    dates = sorted(set(started) | set(shared))
    if dates and (dates[-1] - dates[0]).days < GAP_FILLED_DAYS:
        dates = [dates[0] + dt.timedelta(days=n) for n in range((dates[-1] - dates[0]).days + 1)]
    return [Day(d, started[d], shared[d]) for d in dates]


# -- participants --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantRow:
    id: int
    user_id: int
    first_name: str
    last_name: str
    division: str | None
    external_id: str | None
    status: ParticipationStatus
    created_at: dt.datetime
    shared_at: dt.datetime | None
    mastery_rate: Decimal | None  # only once shared
    pix_score: int | None  # only once shared
    certifiable: bool | None  # profiles collections, once shared

    @property
    def is_shared(self) -> bool:
        return self.status is ParticipationStatus.SHARED


def _last_name() -> ColumnElement[str]:
    return func.coalesce(Learner.last_name, User.last_name)


def _first_name() -> ColumnElement[str]:
    return func.coalesce(Learner.first_name, User.first_name)


def _participant_query(campaign: Campaign, *, with_snapshot: bool) -> Select[Any]:
    """Participations with the names the school knows (the learner's when linked, else the
    account's) and the class, in one query."""
    snapshot = Participation.shared_results if with_snapshot else None
    columns: list[Any] = [
        Participation.id,
        Participation.user_id,
        _first_name().label("first_name"),
        _last_name().label("last_name"),
        Learner.division,
        Participation.participant_external_id,
        Participation.status,
        Participation.created_at,
        Participation.shared_at,
        Participation.mastery_rate,
        Participation.pix_score,
    ]
    if snapshot is not None:
        columns.append(snapshot)
    return (
        select(*columns)
        .join(User, User.id == Participation.user_id)
        .outerjoin(Learner, Learner.id == Participation.learner_id)
    )


def _row(values: Sequence[Any], *, with_snapshot: bool) -> ParticipantRow:
    snapshot = values[11] if with_snapshot else None
    shared = values[6] is ParticipationStatus.SHARED
    certifiable = None
    if shared and isinstance(snapshot, dict):
        found = (snapshot.get("profile") or {}).get("certifiable")
        certifiable = bool(found) if found is not None else None
    return ParticipantRow(
        id=values[0],
        user_id=values[1],
        first_name=values[2],
        last_name=values[3],
        division=values[4],
        external_id=values[5],
        status=values[6],
        created_at=values[7],
        shared_at=values[8],
        mastery_rate=values[9] if shared else None,
        pix_score=values[10] if shared else None,
        certifiable=certifiable,
    )


def divisions(session: Session, campaign: Campaign) -> list[str]:
    """The classes of the campaign's participants (for the filter)."""
    return list(
        session.scalars(
            select(Learner.division)
            .distinct()
            .join(Participation, Participation.learner_id == Learner.id)
            .where(_live(campaign.id), Learner.division.is_not(None))
            .order_by(Learner.division)
        )
    )


def participants_page(
    session: Session,
    campaign: Campaign,
    *,
    division: str | None = None,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> pagination.Page[ParticipantRow]:
    """One page of live participants sorted by last name, first name (then id, so that pages
    never overlap), optionally of one class. Two queries whatever the page size."""
    if per_page not in PER_PAGE_CHOICES:
        per_page = DEFAULT_PER_PAGE
    conditions = [_live(campaign.id)]
    if division:
        conditions.append(Learner.division == division)
    total = (
        session.scalar(
            select(func.count())
            .select_from(Participation)
            .outerjoin(Learner, Learner.id == Participation.learner_id)
            .where(*conditions)
        )
        or 0
    )
    listing = pagination.clamp(page, total=total, per_page=per_page)
    with_snapshot = campaign.type is CampaignType.PROFILES_COLLECTION
    rows = session.execute(
        _participant_query(campaign, with_snapshot=with_snapshot)
        .where(*conditions)
        .order_by(func.lower(_last_name()), func.lower(_first_name()), Participation.id)
        .limit(listing.per_page)
        .offset(listing.offset)
    ).all()
    return listing.with_items(_row(r, with_snapshot=with_snapshot) for r in rows)


@dataclass(frozen=True)
class PartResult:
    """A competence or an area in one participant's frozen results."""

    id: str
    title: str
    targeted: int
    validated: int
    tested: int

    @property
    def rate(self) -> float:
        return self.validated / self.targeted if self.targeted else 0.0


@dataclass(frozen=True)
class CompetenceProfile:
    id: str
    title: str
    level: int
    pix: int


@dataclass(frozen=True)
class ParticipantDetail:
    row: ParticipantRow
    progress: float
    # Set only once shared: results never reach the organization before.
    targeted: int | None = None
    validated: int | None = None
    tested: int | None = None
    competences: list[PartResult] = field(default_factory=list)
    tutorials: list[Tutorial] = field(default_factory=list)
    profile: list[CompetenceProfile] = field(default_factory=list)  # profiles collections
    certifiable_competences: int | None = None


def participant_detail(
    session: Session, campaign: Campaign, participation_id: int
) -> ParticipantDetail | None:
    """One participant of the campaign (None if the id is not one of its participations)."""
    with_snapshot = True
    found = session.execute(
        _participant_query(campaign, with_snapshot=with_snapshot).where(
            Participation.id == participation_id,
            Participation.campaign_id == campaign.id,
            Participation.deleted_at.is_(None),
            Participation.is_improved.is_(False),
        )
    ).first()
    if found is None:
        return None
    row = _row(found, with_snapshot=with_snapshot)
    snapshot = found[11]
    if not row.is_shared or not isinstance(snapshot, dict):
        return ParticipantDetail(row, _progress(session, campaign, row))
    pack = journey.campaign_content(session, campaign).pack
    overall = snapshot.get("overall") or {}
    profile = snapshot.get("profile") or {}
    return ParticipantDetail(
        row,
        progress=1.0,
        targeted=int(overall.get("targeted", 0)),
        validated=int(overall.get("validated", 0)),
        tested=int(overall.get("tested", 0)),
        competences=[
            PartResult(
                key,
                _competence_title(pack, key),
                int(part.get("targeted", 0)),
                int(part.get("validated", 0)),
                int(part.get("tested", 0)),
            )
            for key, part in _in_content_order(pack, snapshot.get("competences") or {})
        ],
        tutorials=_failed_tutorials(session, campaign, row),
        profile=[
            CompetenceProfile(
                key,
                _competence_title(pack, key),
                int(part.get("level", 0)),
                int(part.get("pix", 0)),
            )
            for key, part in _in_content_order(pack, profile.get("competences") or {})
        ],
        certifiable_competences=profile.get("certifiable_competences"),
    )


def _progress(session: Session, campaign: Campaign, row: ParticipantRow) -> float:
    """What the student's own bar shows: the test's progress as it runs; 100 % once it is
    over."""
    if row.status is not ParticipationStatus.STARTED:
        return 1.0
    shown = session.scalar(
        select(func.max(Assessment.progress)).where(
            Assessment.participation_id == row.id,
            Assessment.state == AssessmentState.STARTED,
        )
    )
    return (shown or 0) / 100


def _competence_title(pack: ContentPack, competence_id: str) -> str:
    competence = pack.competence_by_id.get(competence_id)
    return f"{competence_id} {competence.title}" if competence else competence_id


def _area_title(pack: ContentPack, area_id: str) -> str:
    area = next((a for a in pack.areas if a.id == area_id), None)
    return f"{area_id}. {area.title}" if area else area_id


def _in_content_order(pack: ContentPack, parts: dict[str, Any]) -> list[tuple[str, Any]]:
    order = {c.id: i for i, c in enumerate(pack.competences)}
    order.update({a.id: i for i, a in enumerate(pack.areas)})
    return sorted(parts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


def _failed_tutorials(session: Session, campaign: Campaign, row: ParticipantRow) -> list[Tutorial]:
    """The tutorials proposed to the participant: those of the campaign's skills they failed
    (their effective knowledge at the share date is a direct failure: a question answered
    wrong, not a harder skill inferred from it), in content order, each once."""
    content = journey.campaign_content(session, campaign)
    elements = session.execute(
        select(KnowledgeElement.skill_id, KnowledgeElement.status, KnowledgeElement.source)
        .where(
            KnowledgeElement.user_id == row.user_id,
            KnowledgeElement.skill_id.in_(list(content.index.skills)),
            KnowledgeElement.created_at <= (row.shared_at or utcnow()),
        )
        .order_by(KnowledgeElement.created_at, KnowledgeElement.id)
    )
    latest = {skill: (status, source) for skill, status, source in elements}
    failed = {
        skill
        for skill, (status, source) in latest.items()
        if status is KnowledgeElementStatus.INVALIDATED and source is KnowledgeElementSource.DIRECT
    }
    tutorials: dict[str, Tutorial] = {}
    for skill in content.pack.skills:
        if skill.id in failed:
            for tutorial in skill.tutorials:
                tutorials.setdefault(tutorial.id, tutorial)
    return list(tutorials.values())


# -- collective results --------------------------------------------------------------------------

BUCKETS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 100))


def bucket_of(rate: float) -> int:
    """Index in BUCKETS of a mastery rate (0–1): lower bounds included, 100 % in the last."""
    return min(len(BUCKETS) - 1, max(0, int(rate * 100 + 1e-9) // 20))


@dataclass(frozen=True)
class GroupAverage:
    """A competence or an area over the shared participations."""

    id: str
    title: str
    targeted: int
    average_validated: float
    average_rate: float  # mean of the participants' validated / targeted


@dataclass(frozen=True)
class CompetenceAverage:
    """Profiles collections: a competence over the profiles received."""

    id: str
    title: str
    average_level: float
    average_pix: float


@dataclass(frozen=True)
class CollectiveResults:
    participants: int  # live participations
    shared: int  # results received (counted while streaming)
    average_rate: float | None  # mean frozen mastery rate
    competences: list[GroupAverage]
    areas: list[GroupAverage]
    buckets: list[tuple[str, int]]  # ("0–20 %", participants)
    # Profiles collections
    average_pix: float | None = None
    certifiable: int = 0
    profile: list[CompetenceAverage] = field(default_factory=list)


def _add_parts(totals: dict[str, list[float]], parts: Any) -> None:
    """Add one participant's competences (or areas) to running totals:
    [targeted, validated sum, rate sum, participants]."""
    if not isinstance(parts, dict):
        return
    for key, part in parts.items():
        entry = totals.get(key)
        if entry is None:
            entry = totals[key] = [0, 0, 0.0, 0]
        targeted = part.get("targeted") or 0
        validated = part.get("validated") or 0
        if targeted > entry[0]:
            entry[0] = targeted
        entry[1] += validated
        if targeted:
            entry[2] += validated / targeted
        entry[3] += 1


def _snapshots(session: Session, campaign: Campaign, *parts: str) -> Iterator[Sequence[Any]]:
    """The frozen results of the campaign's shared participations (the live participation
    only: one per user), streamed in batches: the mastery rate and only the named parts of the
    snapshot (decoding JSON is most of the work)."""
    columns = [Participation.shared_results[part] for part in parts]
    result = session.execute(
        select(Participation.mastery_rate, *columns)
        .where(_shared(campaign.id))
        .execution_options(yield_per=BATCH_SIZE)
    )
    for partition in result.partitions():
        yield from partition


def collective_results(session: Session, campaign: Campaign) -> CollectiveResults:
    """Cards, per competence and per area averages, and participants by mastery bucket (for a
    profiles collection: average pix and level per competence, certifiable participants) over
    the shared participations: aggregated while the snapshots stream by, never all held.

    The average result of a competence is the mean of the participants' validated / targeted
    (the targeted skills are the same for everyone: the campaign's)."""
    pack = journey.campaign_content(session, campaign).pack
    participants = figures(session, campaign).participants
    collection = campaign.type is CampaignType.PROFILES_COLLECTION
    shared = 0
    rate_sum = 0.0
    buckets = [0] * len(BUCKETS)
    competences: dict[str, list[float]] = {}
    areas: dict[str, list[float]] = {}
    pix_sum = 0
    certifiable = 0
    levels: dict[str, list[int]] = {}  # competence -> [level sum, pix sum]
    parts = ("profile",) if collection else ("competences", "areas")
    for row in _snapshots(session, campaign, *parts):
        shared += 1
        rate = float(row[0] or 0)
        rate_sum += rate
        buckets[bucket_of(rate)] += 1
        if not collection:
            _add_parts(competences, row[1])
            _add_parts(areas, row[2])
            continue
        profile = row[1] if isinstance(row[1], dict) else {}
        pix_sum += int(profile.get("pix") or 0)
        certifiable += bool(profile.get("certifiable"))
        for key, part in (profile.get("competences") or {}).items():
            entry = levels.get(key)
            if entry is None:
                entry = levels[key] = [0, 0]
            entry[0] += part.get("level") or 0
            entry[1] += part.get("pix") or 0

    def averages(totals: dict[str, list[float]], title: Any) -> list[GroupAverage]:
        return [
            GroupAverage(key, title(pack, key), int(t[0]), t[1] / t[3], t[2] / t[3])
            for key, t in _in_content_order(pack, totals)
        ]

    return CollectiveResults(
        participants=participants,
        shared=shared,
        average_rate=rate_sum / shared if shared else None,
        competences=averages(competences, _competence_title),
        areas=averages(areas, _area_title),
        buckets=[(f"{low}–{high} %", n) for (low, high), n in zip(BUCKETS, buckets, strict=True)],
        average_pix=pix_sum / shared if shared and collection else None,
        certifiable=certifiable,
        profile=[
            CompetenceAverage(key, _competence_title(pack, key), sums[0] / shared, sums[1] / shared)
            for key, sums in _in_content_order(pack, levels)
        ],
    )


# -- analysis --------------------------------------------------------------------------------------

REACHED_LEVEL_POINTS = 40
DIFFICULTY_POINTS = 30
PROGRESS_POINTS = 20
NEXT_STEP_POINTS = 10


def tube_score(
    tube_levels: Sequence[int], validated_levels: Collection[int], campaign_max_level: int
) -> float:
    """The reference's relevance score of a tube for one participant (0–100; the LOWER, the
    more the tube is worth working on).

    - `tube_levels`: the levels of the tube's skills *in the campaign* (the target profile may
      cap a tube: its "max level" is the highest level the campaign assesses in it);
    - `validated_levels`: the levels of those skills the participant had validated when they
      shared;
    - `campaign_max_level`: the highest level among all the campaign's skills.

    score = 40 · reached / tube max                (reached = highest validated level, 0 if none)
          + 30 · tube max / campaign max            (harder tubes score higher: less urgent)
          + 20 · validated skills / tube skills
          + 10 · reached / next level to reach      (only if something is validated; the next
                                                     level is the lowest level not validated,
                                                     the tube max when everything is)
    """
    if not tube_levels:
        raise ValueError("a tube of the campaign has at least one skill")
    tube_max = max(tube_levels)
    validated = [level for level in tube_levels if level in set(validated_levels)]
    reached = max(validated, default=0)
    score = REACHED_LEVEL_POINTS * reached / tube_max
    score += DIFFICULTY_POINTS * tube_max / campaign_max_level
    score += PROGRESS_POINTS * len(validated) / len(tube_levels)
    if validated:
        missing = [level for level in tube_levels if level not in set(validated)]
        next_level = min(missing, default=tube_max)
        score += NEXT_STEP_POINTS * reached / next_level
    return score


RECOMMENDATION_LEVELS = (
    (25.0, "Très recommandé"),
    (50.0, "Fortement recommandé"),
    (75.0, "Recommandé"),
    (math.inf, "Assez recommandé"),
)


def recommendation(average_score: float) -> str:
    """The label of an average score: ≤ 25 "Très recommandé", ≤ 50 "Fortement recommandé",
    ≤ 75 "Recommandé", above "Assez recommandé" (French message ids, translated by the view)."""
    return next(label for limit, label in RECOMMENDATION_LEVELS if average_score <= limit)


@dataclass(frozen=True)
class TubeRecommendation:
    tube_id: str
    title: str
    description: str
    competence_id: str
    competence_title: str
    average_score: float
    label: str  # French message id (see `recommendation`)
    tutorials: tuple[Tutorial, ...]


@dataclass(frozen=True)
class Analysis:
    participants: int  # shared participations taken into account
    tubes: list[TubeRecommendation]  # most recommended first


def validated_masks(session: Session, campaign: Campaign) -> dict[str, Counter[int]]:
    """How many shared participants validated each subset of each tube's skills, as of their
    share date: {tube id: {bit mask of validated skills (bit = position in the tube): count}}.
    Participants with nothing validated in a tube are not listed (count them by difference).

    A user usually has one knowledge element per skill (a skill known is never asked again), so
    a first query groups the elements up to the share date per user and tube only, and then per
    tube and (validated bits, all bits, element count): a few rows per tube whatever the size
    of the campaign. The sum of n distinct powers of two has n bits set, and a repeated one
    carries, so the count tells exactly whether a user had several elements for a skill (a
    failure retried later, a reset): if anyone did, `_exact_masks` recomputes everything with
    the latest element per skill (slower: one more level of grouping)."""
    index = journey.campaign_content(session, campaign).index
    if not index.skills:
        return {}
    tubes, codes = _skill_codes(campaign, session)
    ke = KnowledgeElement
    coded = (
        select(
            ke.user_id.label("user_id"),
            case(codes, value=ke.skill_id).label("code"),
            (ke.status == KnowledgeElementStatus.VALIDATED).label("validated"),
        )
        .join(Participation, Participation.user_id == ke.user_id)
        .where(
            _shared(campaign.id),
            ke.skill_id.in_(list(codes)),
            ke.created_at <= Participation.shared_at,
        )
        .subquery()
    )
    bit = coded.c.code % 256
    per_tube = (
        select(
            (coded.c.code // 256).label("tube"),
            func.sum(case((coded.c.validated, bit), else_=0)).label("validated"),
            func.sum(bit).label("assessed"),
            func.count().label("elements"),
        )
        .group_by(coded.c.user_id, coded.c.code // 256)
        .subquery()
    )
    rows = session.execute(
        select(
            per_tube.c.tube,
            per_tube.c.validated,
            per_tube.c.assessed,
            per_tube.c.elements,
            func.count(),
        ).group_by(per_tube.c.tube, per_tube.c.validated, per_tube.c.assessed, per_tube.c.elements)
    )
    masks: dict[str, Counter[int]] = {}
    for number, validated, assessed, elements, count in rows:
        if int(assessed).bit_count() != int(elements):
            return _exact_masks(session, campaign)
        if int(validated):
            masks.setdefault(tubes[int(number)], Counter())[int(validated)] += count
    return masks


def _skill_codes(campaign: Campaign, session: Session) -> tuple[list[str], dict[str, int]]:
    """Skills as small integers (grouping on them is much cheaper than on string ids):
    code = tube number × 256 + the skill's bit in its tube (a tube has at most 8 skills)."""
    index = journey.campaign_content(session, campaign).index
    codes = {
        skill.id: number * 256 + (1 << index.position[skill.id])
        for number, tube in enumerate(index.tubes)
        for skill in tube.skills
    }
    return [tube.id for tube in index.tubes], codes


def _exact_masks(session: Session, campaign: Campaign) -> dict[str, Counter[int]]:
    """`validated_masks` when some users have several elements for a skill: per user and
    skill, the knowledge that counted when they shared is the latest element up to the share
    date (a validation, or not: a failure or a reset)."""
    tubes, codes = _skill_codes(campaign, session)
    ke = KnowledgeElement
    code = case(codes, value=ke.skill_id)
    validated = ke.status == KnowledgeElementStatus.VALIDATED
    per_skill = (
        select(
            ke.user_id.label("user_id"),
            code.label("code"),
            func.max(case((validated, ke.created_at))).label("validated_at"),
            func.max(case((~validated, ke.created_at))).label("undone_at"),
        )
        .join(Participation, Participation.user_id == ke.user_id)
        .where(
            _shared(campaign.id),
            ke.skill_id.in_(list(codes)),
            ke.created_at <= Participation.shared_at,
        )
        .group_by(ke.user_id, code)
        .subquery()
    )
    tube_number = per_skill.c.code // 256
    per_tube = (
        select(tube_number.label("tube"), func.sum(per_skill.c.code % 256).label("mask"))
        .where(
            per_skill.c.validated_at.is_not(None),
            or_(
                per_skill.c.undone_at.is_(None),
                per_skill.c.validated_at >= per_skill.c.undone_at,
            ),
        )
        .group_by(per_skill.c.user_id, tube_number)
        .subquery()
    )
    rows = session.execute(
        select(per_tube.c.tube, per_tube.c.mask, func.count()).group_by(
            per_tube.c.tube, per_tube.c.mask
        )
    )
    masks: dict[str, Counter[int]] = {}
    for number, mask, count in rows:
        masks.setdefault(tubes[int(number)], Counter())[int(mask)] += count
    return masks


def analysis(session: Session, campaign: Campaign) -> Analysis:
    """The campaign's tubes ranked by relevance for the group: the reference score
    (`tube_score`) averaged over the shared participations, lowest (most recommended) first,
    ties in content order. Each tube comes with its competence and the tutorials of its
    skills in the campaign.

    Interpretation of the reference: every shared participant counts (the live participation
    of each user), those who validated nothing in a tube with the difficulty part alone;
    "validated" means their knowledge when they shared (`validated_masks`), so the analysis
    never moves once results are received; an average above a threshold takes the next label
    (≤ 25, ≤ 50, ≤ 75, above)."""
    content = journey.campaign_content(session, campaign)
    pack, index = content.pack, content.index
    participants = figures(session, campaign).shared
    if not index.skills or not participants:
        return Analysis(participants, [])
    campaign_max = max(skill.level for skill in index.skills.values())
    masks = validated_masks(session, campaign)
    order = {t.id: i for i, t in enumerate(pack.tubes)}
    ranked: list[tuple[float, int, TubeRecommendation]] = []
    for tube in index.tubes:
        levels = [s.level for s in tube.skills]
        counts = masks.get(tube.id, Counter())
        total = 0.0
        for mask, count in counts.items():
            chosen = [s.level for i, s in enumerate(tube.skills) if mask >> i & 1]
            total += count * tube_score(levels, chosen, campaign_max)
        nothing = participants - sum(counts.values())
        total += nothing * tube_score(levels, (), campaign_max)
        average = total / participants
        content_tube = pack.tube_by_id.get(tube.id)
        competence_id = tube.skills[0].competence_id
        tutorials: dict[str, Tutorial] = {}
        for skill in tube.skills:
            for tutorial in skill.tutorials:
                tutorials.setdefault(tutorial.id, tutorial)
        ranked.append(
            (
                round(average, 6),
                order.get(tube.id, len(order)),
                TubeRecommendation(
                    tube.id,
                    content_tube.title if content_tube else tube.id,
                    content_tube.description if content_tube else "",
                    competence_id,
                    _competence_title(pack, competence_id),
                    average,
                    recommendation(average),
                    tuple(tutorials.values()),
                ),
            )
        )
    ranked.sort(key=lambda item: (item[0], item[1]))
    return Analysis(participants, [item[2] for item in ranked])
