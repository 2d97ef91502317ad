"""CSV exports of a campaign, in the format French schools open in Excel.

UTF-8 with a byte order mark, `;` between cells, CRLF line ends, decimal comma, "Oui"/"Non",
"NA" for anything missing, dates `DD/MM/YYYY HH:mm` in Europe/Paris, and every text cell that a
spreadsheet could take for a formula (= + - @ tab CR) prefixed with a single quote.

Rates ("% de progression", "% maitrise…", "% de maitrise des acquis…") are written as the
reference writes them: a rate between 0 and 1 with a decimal comma, rounded half up to two
decimals ("0,75", "1", "0"), so that the teacher formats the column as a percentage in Excel.

Cells are joined by hand (`csv_field` quotes the text cells that need it, as the csv module
would); the figures of a shared assessment are formatted once per batch, by the thread that
reads them, as one run of cells.

Rows are the campaign's live participations sorted by last name, first name (the school's
learner record when there is one, the account otherwise). They come from one sorted query of
light columns streamed in batches (`yield_per`: a server-side cursor on PostgreSQL). For each
batch, a fixed number of queries bring the rest, never one per row: the figures frozen at sharing
(`Participation.shared_results`, picked out of the JSON by the database, never recomputed), the
progress of tests under way and, on request, the skill-by-skill statuses as of the share date
(both from knowledge elements, the latest per skill found by a window function). Nothing holds
the whole campaign: memory stays flat whatever the number of participants.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Executable,
    Select,
    String,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    select,
    text,
    type_coerce,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from campaigns.journey.services import campaign_content
from campaigns.shared.models import (
    Campaign,
    CampaignSkill,
    CampaignType,
    KnowledgeElement,
    Learner,
    Organization,
    OrganizationType,
    Participation,
    ParticipationStatus,
    TargetProfile,
    User,
)
from engine.content import Area, Competence, ContentPack, Skill
from engine.knowledge import FORGET_FAILURES_AFTER, Status

PARIS = ZoneInfo("Europe/Paris")
BOM = "\ufeff"
MISSING = "NA"
YES, NO = "Oui", "Non"
BATCH = 1000  # participations per fetch, and per knowledge-element query
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SKILL_OK, SKILL_KO, NOT_TESTED = "OK", "KO", "Non testé"
NO_FIGURES = f"{MISSING};{MISSING};{MISSING}"  # a competence or area missing from a snapshot


# -- cell formats ---------------------------------------------------------------------------------


def text_cell(value: str | None) -> str:
    """A text cell, neutralised against formula injection; "NA" when missing."""
    if value is None or value == "":
        return MISSING
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


_NEEDS_QUOTES = re.compile('[;"\r\n]')


def csv_field(value: str) -> str:
    """A cell as the csv module writes it with `;` (minimal quoting): quoted when it holds the
    separator, a quote or a line break, quotes doubled."""
    if _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_line(cells: list[str]) -> str:
    """A row of cells that are already safe (see `csv_field`)."""
    return ";".join(cells) + "\r\n"


def yes_no(value: bool) -> str:
    return YES if value else NO


def date_cell(moment: dt.datetime | None) -> str:
    if moment is None:
        return MISSING
    local = moment.astimezone(PARIS)
    return f"{local.day:02}/{local.month:02}/{local.year} {local.hour:02}:{local.minute:02}"


def decimal_cell(value: Decimal | float) -> str:
    """A rate rounded half up to two decimals, with a decimal comma and no trailing zeros."""
    rounded = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    shown = format(rounded.normalize(), "f")
    return shown.replace(".", ",")


@lru_cache(maxsize=4096)
def rate_cell(validated: int, targeted: int) -> str:
    if not targeted:
        return MISSING
    return decimal_cell(Decimal(validated) / Decimal(targeted))


# -- columns ----------------------------------------------------------------------------------------


def competence_label(competence: Competence) -> str:
    """ "1.1 Mener une recherche et une veille d'information": index and title."""
    return f"{competence.id} {competence.title}"


def area_label(area: Area) -> str:
    return f"{area.id} {area.title}"


@dataclass(frozen=True)  # cached_property needs the instance __dict__: no slots
class ExportLayout:
    """What one export writes: its fixed context and its variable columns."""

    kind: CampaignType
    organization_name: str
    campaign_id: int
    code: str
    campaign_name: str
    profile_name: str | None
    is_school: bool
    external_id_label: str | None
    competences: tuple[Competence, ...]
    areas: tuple[Area, ...]
    skills: tuple[Skill, ...]  # empty unless the skill columns were asked for
    campaign_skill_ids: tuple[str, ...]  # every skill the campaign assesses

    def header(self) -> list[str]:
        head = [
            "Nom de l'organisation",
            "ID Campagne",
            "Code",
            "Nom de la campagne",
        ]
        if self.kind is CampaignType.ASSESSMENT:
            head.append("Parcours")
        head += ["Nom du Participant", "Prénom du Participant"]
        if self.is_school:
            head.append("Classe")
        if self.external_id_label:
            head.append(text_cell(self.external_id_label))
        if self.kind is CampaignType.PROFILES_COLLECTION:
            head += [
                "Envoi (O/N)",
                "Date de l'envoi",
                "Nombre de pix total",
                "Certifiable (O/N)",
                "Nombre de compétences certifiables",
            ]
            for competence in self.competences:
                label = competence_label(competence)
                head += [
                    f"Niveau pour la compétence {label}",
                    f"Nombre de pix pour la compétence {label}",
                ]
            return head
        head += [
            "% de progression",
            "Date de début",
            "Partage (O/N)",
            "Date du partage",
            "% maitrise de l'ensemble des acquis du profil",
        ]
        for competence in self.competences:
            label = competence_label(competence)
            head += [
                f"% de maitrise des acquis de la compétence {label}",
                f"Nombre d'acquis du profil cible dans la compétence {label}",
                f"Acquis maitrisés dans la compétence {label}",
            ]
        for area in self.areas:
            label = area_label(area)
            head += [
                f"% de maitrise des acquis du domaine {label}",
                f"Nombre d'acquis du profil cible du domaine {label}",
                f"Acquis maitrisés du domaine {label}",
            ]
        head += [text_cell(skill.id) for skill in self.skills]  # "@…": neutralised too
        return head

    @cached_property
    def campaign_prefix(self) -> str:
        """The first cells, the same on every row, joined and quoted once."""
        return ";".join(csv_field(cell) for cell in self._campaign_cells())

    @cached_property
    def missing_parts(self) -> str:
        """The competence and area cells of a participant without results."""
        return ";".join([NO_FIGURES] * (len(self.competences) + len(self.areas)))

    def _campaign_cells(self) -> list[str]:
        cells = [
            text_cell(self.organization_name),
            str(self.campaign_id),
            self.code,
            text_cell(self.campaign_name),
        ]
        if self.kind is CampaignType.ASSESSMENT:
            cells.append(text_cell(self.profile_name))
        return cells


def export_layout(
    session: Session, campaign: Campaign, organization: Organization, *, with_skills: bool = False
) -> ExportLayout:
    content = campaign_content(session, campaign)
    pack: ContentPack = content.pack
    if campaign.type is CampaignType.PROFILES_COLLECTION:
        competences = pack.competences
        areas: tuple[Area, ...] = ()
        skills: tuple[Skill, ...] = ()
        all_skills: tuple[Skill, ...] = ()
        profile_name = None
    else:
        # Read here rather than from the per-process content cache, keyed by campaign id: a
        # rolled-back test run on SQLite reuses ids, and the export must never show other skills.
        targeted = set(
            session.scalars(
                select(CampaignSkill.skill_id).where(CampaignSkill.campaign_id == campaign.id)
            )
        )
        skills = tuple(s for s in pack.skills if s.id in targeted)  # content order
        used = {s.competence_id for s in skills}
        competences = tuple(c for c in pack.competences if c.id in used)
        areas = tuple(a for a in pack.areas if any(c.id in used for c in a.competences))
        all_skills = skills
        if not with_skills:
            skills = ()
        profile_name = session.scalar(
            select(TargetProfile.name).where(TargetProfile.id == campaign.target_profile_id)
        )
    return ExportLayout(
        kind=campaign.type,
        organization_name=organization.name,
        campaign_id=campaign.id,
        code=campaign.code,
        campaign_name=campaign.name,
        profile_name=profile_name,
        is_school=organization.type is OrganizationType.SCO,
        external_id_label=campaign.external_id_label,
        competences=competences,
        areas=areas,
        skills=skills,
        campaign_skill_ids=tuple(s.id for s in all_skills),
    )


# -- rows -------------------------------------------------------------------------------------------


class ParticipantRow:
    """One participation as the export reads it (a light tuple: no ORM object)."""

    __slots__ = (
        "created_at",
        "division",
        "external_id",
        "first_name",
        "id",
        "last_name",
        "mastery_rate",
        "pix_score",
        "shared_at",
        "status",
        "user_id",
    )  # fmt: skip

    def __init__(self, *values: Any) -> None:
        (
            self.id, self.user_id, status, self.created_at, self.shared_at, self.external_id,
            self.mastery_rate, self.pix_score, self.last_name, self.first_name, self.division,
        ) = values  # fmt: skip
        self.status = ParticipationStatus(status)


def participant_rows(
    session: Session, campaign_id: int, *, batch: int = BATCH
) -> Iterator[list[ParticipantRow]]:
    """The campaign's live participations, sorted by name, in batches from one streamed query
    (a server-side cursor on PostgreSQL). Only light columns: the sort stays cheap."""
    last_name = func.coalesce(Learner.last_name, User.last_name)
    first_name = func.coalesce(Learner.first_name, User.first_name)
    query = (
        select(
            Participation.id,
            Participation.user_id,
            type_coerce(Participation.status, String),
            Participation.created_at,
            Participation.shared_at,
            Participation.participant_external_id,
            Participation.mastery_rate,
            Participation.pix_score,
            last_name,
            first_name,
            Learner.division,
        )
        .join(User, User.id == Participation.user_id)
        .outerjoin(Learner, Learner.id == Participation.learner_id)
        .where(
            Participation.campaign_id == campaign_id,
            Participation.is_improved.is_(False),
            Participation.deleted_at.is_(None),
        )
        .order_by(func.lower(last_name), func.lower(first_name), Participation.id)
        .execution_options(yield_per=batch)
    )
    for partition in session.connection().execute(query).partitions():
        yield [ParticipantRow(*row) for row in partition]


SnapshotPath = tuple[str, ...]


def snapshot_paths(layout: ExportLayout) -> list[SnapshotPath]:
    """The figures of the frozen snapshot each row needs, in column order."""
    if layout.kind is CampaignType.PROFILES_COLLECTION:
        paths: list[SnapshotPath] = [
            ("profile", "pix"),
            ("profile", "certifiable"),
            ("profile", "certifiable_competences"),
        ]
        for competence in layout.competences:
            paths += [
                ("profile", "competences", competence.id, "level"),
                ("profile", "competences", competence.id, "pix"),
            ]
        return paths
    paths = [("overall", "targeted"), ("overall", "validated")]
    for kind, keys in (
        ("competences", [c.id for c in layout.competences]),
        ("areas", [a.id for a in layout.areas]),
    ):
        for key in keys:
            paths += [(kind, key, "targeted"), (kind, key, "validated")]
    return paths


Figures = list[str | None]


def snapshots(
    session: Session, layout: ExportLayout, participation_ids: Sequence[int]
) -> dict[int, Figures]:
    """The figures frozen at sharing for a batch of participations (`snapshot_paths` order, as
    text), in one query. The database picks them out of the JSON documents: decoding each
    document in Python would cost more than all the rest of the row."""
    if not participation_ids:
        return {}
    dialect = session.get_bind().dialect.name
    query = _snapshot_query(dialect, tuple(snapshot_paths(layout)))
    rows = session.connection().execute(query, {"ids": list(participation_ids)})
    if dialect == "postgresql":
        return {id_: [v or None for v in joined.split(",")] for id_, joined in rows}
    return {row[0]: [None if v is None else _json_text(v) for v in row[1:]] for row in rows}


@lru_cache(maxsize=64)
def _snapshot_query(dialect: str, paths: tuple[SnapshotPath, ...]) -> Executable:
    """Built once per layout. On PostgreSQL, plain SQL: SQLAlchemy would spend more time keying
    forty JSON-path expressions for its statement cache at every batch than the database spends
    running the query. The document is decompressed once per row (the OFFSET 0 lateral subquery
    keeps the planner from doing it again for every figure) and the figures come back joined in
    one text column, cheaper to transfer and split than forty columns."""
    if dialect == "postgresql":
        figures = ", ".join(f"coalesce(s.document #>> :path_{i}, '')" for i in range(len(paths)))
        return text(
            f"SELECT p.id, concat_ws(',', {figures}) FROM participations p"  # noqa: S608 - no data
            " CROSS JOIN LATERAL (SELECT p.shared_results || '{}'::jsonb AS document OFFSET 0) s"
            " WHERE p.id = ANY(:ids)"
        ).bindparams(**{f"path_{i}": list(path) for i, path in enumerate(paths)})
    figures_ = [Participation.shared_results[p].as_string() for p in paths]
    return select(Participation.id, *figures_).where(
        Participation.id.in_(bindparam("ids", expanding=True))
    )


AssessmentFigures = tuple[str | None, str]  # (overall rate, competence and area cells)


def assessment_figures(
    session: Session, layout: ExportLayout, participation_ids: Sequence[int]
) -> dict[int, AssessmentFigures]:
    """For a batch of shared participations of an assessment: the overall rate of the frozen
    snapshot (None when it has none: the export falls back on the participation's mastery
    rate) and its competence and area cells ("rate;targeted;validated" each, "NA;NA;NA" for a
    part missing from the snapshot), joined. (Formatting them in SQL was measured: PostgreSQL's
    numeric arithmetic made it several times slower than this.)"""
    found = snapshots(session, layout, participation_ids)
    return {id_: _format_figures(figures) for id_, figures in found.items()}


def _format_figures(figures: Figures) -> AssessmentFigures:
    targeted, validated = figures[0], figures[1]
    overall = None
    if targeted and validated is not None and targeted != "0":
        overall = _rate_text(validated, targeted)
    parts = []
    for i in range(2, len(figures), 2):
        targeted, validated = figures[i], figures[i + 1]
        if targeted is None or validated is None:
            parts.append(NO_FIGURES)
        else:
            parts.append(f"{_rate_text(validated, targeted)};{targeted};{validated}")
    return overall, ";".join(parts)


def _json_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _known_elements(*, until_shared: bool) -> Any:
    """Per participation of the batch (`:participation_ids`, whose users are `:user_ids`) and
    skill (`:skill_ids`), the latest knowledge element of its user (as of the share date when
    `until_shared`): `engine.knowledge.effective`'s first step, done by the database.

    The rows come out in (user, skill) order: the queries below group them by user (a batch
    holds one live participation per user), which needs no further sort."""
    rank = func.row_number().over(
        partition_by=(KnowledgeElement.user_id, KnowledgeElement.skill_id),
        order_by=(KnowledgeElement.created_at.desc(), KnowledgeElement.id.desc()),
    )
    query = (
        select(
            KnowledgeElement.user_id,
            Participation.created_at.label("joined_at"),
            KnowledgeElement.skill_id,
            type_coerce(KnowledgeElement.status, String).label("status"),
            KnowledgeElement.created_at,
            rank.label("rank"),
        )
        .join(Participation, Participation.user_id == KnowledgeElement.user_id)
        .where(
            Participation.id.in_(bindparam("participation_ids", expanding=True)),
            # Named too, so that the planner reads the (user_id, skill_id) index.
            KnowledgeElement.user_id.in_(bindparam("user_ids", expanding=True)),
            KnowledgeElement.skill_id.in_(bindparam("skill_ids", expanding=True)),
        )
    )
    if until_shared:
        query = query.where(KnowledgeElement.created_at <= Participation.shared_at)
    return query.subquery()


def _batch_parameters(
    skill_ids: Sequence[str], rows: Sequence[ParticipantRow]
) -> dict[str, list[Any]]:
    return {
        "participation_ids": [r.id for r in rows],
        "user_ids": sorted({r.user_id for r in rows}),
        "skill_ids": list(skill_ids),
    }


@lru_cache(maxsize=8)
def _progress_query(dialect: str) -> Select[Any]:
    """Built once: the statement cache then keys it cheaply at every batch."""
    known = _known_elements(until_shared=False)
    days = FORGET_FAILURES_AFTER.days
    if dialect == "postgresql":
        forget_before = known.c.joined_at - literal_column(f"interval '{int(days)} days'")
    else:  # SQLite keeps timestamps as "YYYY-MM-DD HH:MM:SS.ffffff" text, compared as such
        forget_before = func.strftime("%Y-%m-%d %H:%M:%f", known.c.joined_at, f"-{days} days")
    forgotten = (known.c.status == Status.INVALIDATED.value) & (known.c.created_at <= forget_before)
    return (
        select(known.c.user_id, func.count())
        .where(known.c.rank == 1, known.c.status != Status.RESET.value, ~forgotten)
        .group_by(known.c.user_id)
    )


def progress_counts(
    session: Session, skill_ids: Sequence[str], rows: Sequence[ParticipantRow]
) -> dict[int, int]:
    """Per participation under way, how many of the campaign's skills its student is known on,
    by the rule the student's progress bar follows (`effective` at the start of the test:
    resets and failures older than FORGET_FAILURES_AFTER do not count). One query, one row per
    participation."""
    if not rows or not skill_ids:
        return {}
    query = _progress_query(session.get_bind().dialect.name)
    result = session.connection().execute(query, _batch_parameters(skill_ids, rows))
    participation_of = {r.user_id: r.id for r in rows}
    return {participation_of[user_id]: count for user_id, count in result}


@lru_cache(maxsize=8)
def _skills_query(dialect: str) -> Select[Any]:
    """Per user of the batch's shared participations, the skills validated and those failed
    when they shared, as two comma-separated lists: one short row per participation rather
    than one per skill."""
    known = _known_elements(until_shared=True)
    aggregate = func.string_agg if dialect == "postgresql" else func.group_concat

    def skills(status: Status) -> Any:
        return aggregate(case((known.c.status == status.value, known.c.skill_id)), literal(","))

    return (
        select(known.c.user_id, skills(Status.VALIDATED), skills(Status.INVALIDATED))
        .where(known.c.rank == 1)
        .group_by(known.c.user_id)
    )


def skills_when_shared(
    session: Session, skill_ids: Sequence[str], rows: Sequence[ParticipantRow]
) -> dict[int, list[str]]:
    """Per shared participation, the skill cells in `skill_ids` order: "OK" (validated when it
    was shared), "KO" (failed) or "Non testé" (never assessed, or reset)."""
    if not rows or not skill_ids:
        return {}
    position = {skill: i for i, skill in enumerate(skill_ids)}
    untested = [NOT_TESTED] * len(skill_ids)
    participation_of = {r.user_id: r.id for r in rows}
    query = _skills_query(session.get_bind().dialect.name)
    result = session.connection().execute(query, _batch_parameters(skill_ids, rows))
    found: dict[int, list[str]] = {}
    for user_id, validated, failed in result:
        cells = untested.copy()
        for mark, skills in ((SKILL_OK, validated), (SKILL_KO, failed)):
            if skills:
                for skill in skills.split(","):
                    cells[position[skill]] = mark
        found[participation_of[user_id]] = cells
    return found


@dataclass
class BatchFacts:
    """What the rows of a batch need besides their own columns."""

    figures: dict[int, Figures]  # profiles collections
    results: dict[int, AssessmentFigures]  # assessments
    progress: dict[int, int]
    skills: dict[int, list[str]]  # the skill cells of shared participations


def batch_facts(
    session: Session, layout: ExportLayout, rows: Sequence[ParticipantRow]
) -> BatchFacts:
    shared = [r for r in rows if r.status is ParticipationStatus.SHARED]
    started = [r for r in rows if r.status is ParticipationStatus.STARTED]
    shared_ids = [r.id for r in shared]
    skill_ids = layout.campaign_skill_ids
    assessment = layout.kind is CampaignType.ASSESSMENT
    return BatchFacts(
        figures={} if assessment else snapshots(session, layout, shared_ids),
        results=assessment_figures(session, layout, shared_ids) if assessment else {},
        progress=progress_counts(session, skill_ids, started) if skill_ids else {},
        skills=(
            skills_when_shared(session, [s.id for s in layout.skills], shared)
            if layout.skills
            else {}
        ),
    )


@lru_cache(maxsize=4096)
def _rate_text(validated: str, targeted: str) -> str:
    return rate_cell(int(validated), int(targeted))


def _identity(layout: ExportLayout, row: ParticipantRow) -> list[str]:
    cells = [
        layout.campaign_prefix,
        csv_field(text_cell(row.last_name)),
        csv_field(text_cell(row.first_name)),
    ]
    if layout.is_school:
        cells.append(csv_field(text_cell(row.division)))
    if layout.external_id_label:
        cells.append(csv_field(text_cell(row.external_id)))
    return cells


def assessment_cells(layout: ExportLayout, row: ParticipantRow, facts: BatchFacts) -> list[str]:
    """The row's cells, ready to join: runs of cells may come as one string."""
    status = row.status
    shared = status is ParticipationStatus.SHARED
    cells = _identity(layout, row)
    if status is ParticipationStatus.STARTED:
        count = len(layout.campaign_skill_ids)
        progress = rate_cell(facts.progress.get(row.id, 0), count) if count else MISSING
    else:
        progress = "1"  # the test is over
    cells += [
        progress,
        date_cell(row.created_at),
        YES if shared else NO,
        date_cell(row.shared_at) if shared else MISSING,
    ]
    found = facts.results.get(row.id) if shared else None
    overall, parts = found if found is not None else (None, layout.missing_parts)
    if overall is None:
        overall = (
            decimal_cell(row.mastery_rate) if shared and row.mastery_rate is not None else MISSING
        )
    cells.append(overall)
    if parts:
        cells.append(parts)
    if layout.skills:
        known = facts.skills.get(row.id) if shared else None
        if known is not None:
            cells += known
        else:
            cells += [NOT_TESTED if shared else MISSING] * len(layout.skills)
    return cells


def collection_cells(layout: ExportLayout, row: ParticipantRow, facts: BatchFacts) -> list[str]:
    shared = row.status is ParticipationStatus.SHARED
    cells = _identity(layout, row)
    cells += [yes_no(shared), date_cell(row.shared_at) if shared else MISSING]
    if not shared:
        cells += [MISSING] * (3 + 2 * len(layout.competences))
        return cells
    figures = facts.figures.get(row.id)
    if figures is None:
        figures = [None] * (3 + 2 * len(layout.competences))
    pix, certifiable, certifiable_competences, *scores = figures
    if pix is None and row.pix_score is not None:
        pix = str(row.pix_score)
    cells += [
        pix or MISSING,
        MISSING if certifiable is None else yes_no(certifiable in ("true", "1")),
        certifiable_competences or MISSING,
    ]
    cells += [MISSING if value is None else value for value in scores]
    return cells


# -- the file ---------------------------------------------------------------------------------------


def campaign_csv(
    session: Session,
    campaign: Campaign,
    organization: Organization,
    *,
    with_skills: bool = False,
    batch: int = BATCH,
) -> Iterator[bytes]:
    """The export, chunk by chunk: the BOM and header first, then one chunk per batch of rows,
    read on `session`, which the caller owns (see `streamed_csv` for a response's body).

    The layout is computed before the first chunk so that errors (content missing) happen
    before the response starts."""
    layout = export_layout(session, campaign, organization, with_skills=with_skills)
    return _chunks(session, campaign.id, layout, batch)


def streamed_csv(
    open_session: Callable[[], Session],
    campaign_id: int,
    layout: ExportLayout,
    *,
    batch: int = BATCH,
) -> Generator[bytes, None, None]:
    """The body of an export response: `campaign_csv`'s chunks, read on a session the export
    owns (`open_session()`, read-only), opened when the body starts and closed when it ends or
    when the generator is closed, e.g. by the server's WSGI `close()` when the client goes away;
    closing it before its first chunk opens nothing. Its second connection, if it took one
    (`_facts_reader`), is given back first. The request's session plays no part: nothing here
    needs the request's context, nor relies on it staying alive."""
    session = open_session()
    try:
        yield from _chunks(session, campaign_id, layout, batch)
    finally:
        session.close()


def _batches(
    session: Session, campaign_id: int, layout: ExportLayout, batch: int
) -> Generator[tuple[list[ParticipantRow], BatchFacts], None, None]:
    """All the database work of the export: each batch of rows with what it needs.

    The facts of a batch are asked for as soon as its rows arrive, and handed over once the
    next rows have been fetched: with a second connection (`_facts_reader`), the database reads
    them while this connection fetches and the worker formats."""
    with _facts_reader(session) as read_facts:
        pending: tuple[list[ParticipantRow], Future[BatchFacts]] | None = None
        for rows in participant_rows(session, campaign_id, batch=batch):
            asked = read_facts(layout, rows)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = rows, asked
        if pending is not None:
            yield pending[0], pending[1].result()


FactsReader = Callable[[ExportLayout, Sequence[ParticipantRow]], "Future[BatchFacts]"]


@contextmanager
def _facts_reader(session: Session) -> Iterator[FactsReader]:
    """Reads batch facts on a second pooled connection, on a helper thread, when the session
    is bound to a PostgreSQL engine whose pool has a connection to spare; else in line, on the
    session (an export never waits for a second connection, nor holds one another request
    needs).

    The second connection reads what is committed, as this one does statement by statement
    (READ COMMITTED): snapshots are frozen once shared, so a participation that changes while
    the export runs shows the figures of one of its states, as it would without the thread.
    Nothing is written on either connection. Stopping early waits for the batch under way."""
    bind = session.get_bind()
    if not isinstance(bind, Engine) or bind.dialect.name != "postgresql" or not _spare(bind):

        def in_line(layout: ExportLayout, rows: Sequence[ParticipantRow]) -> Future[BatchFacts]:
            done: Future[BatchFacts] = Future()
            done.set_result(batch_facts(session, layout, rows))
            return done

        yield in_line
        return
    with (
        bind.connect() as connection,
        Session(connection) as other,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-facts") as helper,
    ):

        def on_helper(layout: ExportLayout, rows: Sequence[ParticipantRow]) -> Future[BatchFacts]:
            return helper.submit(batch_facts, other, layout, rows)

        yield on_helper


def _spare(engine: Engine) -> bool:
    """Whether the pool holds an idle connection, within its base size: taking it neither
    waits nor opens an overflow connection that concurrent requests might need."""
    pool = engine.pool
    return isinstance(pool, QueuePool) and pool.checkedout() < pool.size()


def _chunks(
    session: Session, campaign_id: int, layout: ExportLayout, batch: int
) -> Iterator[bytes]:
    yield (BOM + csv_line([csv_field(cell) for cell in layout.header()])).encode("utf-8")
    cells = assessment_cells if layout.kind is CampaignType.ASSESSMENT else collection_cells
    with closing(_batches(session, campaign_id, layout, batch)) as batches:
        for rows, facts in batches:
            yield "".join([csv_line(cells(layout, row, facts)) for row in rows]).encode("utf-8")


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def export_filename(campaign: Campaign, now: dt.datetime) -> str:
    """ASCII-only, e.g. `resultats-ABCDEF234-2026-11-22.csv` (the day in Paris)."""
    prefix = "profils" if campaign.type is CampaignType.PROFILES_COLLECTION else "resultats"
    code = _UNSAFE.sub("", campaign.code)
    return f"{prefix}-{code}-{now.astimezone(PARIS):%Y-%m-%d}.csv"
