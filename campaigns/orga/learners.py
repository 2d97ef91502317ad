"""A school's learners: the SIECLE-like list import, the "Élèves" list, login help for students.

The import is all or nothing: the whole file is read and checked first, every problem is reported
with its line number, and nothing is written unless the file is entirely valid. A new import
updates the list instead of duplicating it: a row is the same learner as before when it has the
same INE, or (without INE) the same last name, first name and birth date. Learners missing from
the new file are disabled, never deleted (their participations stay with the school), and come
back enabled when a later file lists them again.

Services take the session first, flush and never commit.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import SQLCoreOperations

from campaigns.accounts import sessions, users
from campaigns.shared import pagination
from campaigns.shared.errors import InvalidInput, ServiceError
from campaigns.shared.models import (
    AuthenticationMethod,
    AuthenticationProvider,
    Campaign,
    Learner,
    Membership,
    Organization,
    OrganizationType,
    Participation,
    ParticipationStatus,
    User,
)
from config.db import execute_dml, utcnow

MAX_ROWS = 10_000
MAX_ERRORS = 50  # errors kept (and shown); the count says how many there were in all
PAGE_SIZE = 50

# -- reading the file -----------------------------------------------------------------------------

FIELDS = ("last_name", "first_name", "birthdate", "division", "national_student_id")
REQUIRED_FIELDS = ("last_name", "first_name", "birthdate", "division")
# Column names as people (and SIECLE exports) write them, normalized by `_column_key`.
COLUMN_ALIASES = {
    "last_name": {"nom", "nom de famille", "nom eleve", "nom de l eleve", "last name"},
    "first_name": {"prenom", "premier prenom", "prenom 1", "prenom eleve", "first name"},
    "birthdate": {
        "date de naissance",
        "date naissance",
        "date de naissance jj mm aaaa",
        "ne e le",
        "ne le",
        "naissance",
        "birthdate",
    },
    "division": {"division", "classe", "division classe", "classe division", "code division"},
    "national_student_id": {
        "ine",
        "numero ine",
        "n ine",
        "no ine",
        "ine eleve",
        "identifiant national",
        "identifiant national eleve",
    },
}
_COLUMN_FIELD = {alias: name for name, aliases in COLUMN_ALIASES.items() for alias in aliases}

INE_PATTERN = re.compile(r"^(?:\d{10}[A-Z]|\d{9}[A-Z]{2})$")
_FRENCH_DATE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_SPACES = re.compile(r"\s+")


def _field_label(name: str) -> str:
    labels: dict[str, str] = {
        "last_name": _("nom"),
        "first_name": _("prénom"),
        "birthdate": _("date de naissance"),
        "division": _("division"),
        "national_student_id": _("INE"),
    }
    return labels[name]


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return str(_("Ligne %(line)d : %(message)s", line=self.line, message=self.message))


class LearnerFileError(InvalidInput):
    """The file cannot be imported; `errors` lists (up to MAX_ERRORS) problems, `total` counts
    them all. The message is one line: the first problems and how many there are."""

    def __init__(self, errors: Sequence[LineError], total: int | None = None) -> None:
        self.errors = list(errors[:MAX_ERRORS])
        self.total = total if total is not None else len(errors)
        shown = "; ".join(str(e) for e in self.errors[:3])
        more = f" (+{self.total - 3} more)" if self.total > 3 else ""
        super().__init__(
            f"{self.total} error(s) in the learner file, nothing imported: {shown}{more}",
            code="learner_file",
        )


@dataclass(frozen=True)
class LearnerRow:
    """One valid row of the file."""

    line: int
    last_name: str
    first_name: str
    birthdate: dt.date
    division: str | None
    national_student_id: str | None

    @property
    def identity(self) -> tuple[str, str, dt.date | None]:
        return identity(self.last_name, self.first_name, self.birthdate)


def normalize_name(value: str) -> str:
    """Names compared the way people mean them: no accents, case, hyphens or extra spaces."""
    decomposed = unicodedata.normalize("NFKD", value)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", letters).split())


def identity(
    last_name: str, first_name: str, birthdate: dt.date | None
) -> tuple[str, str, dt.date | None]:
    return (normalize_name(last_name), normalize_name(first_name), birthdate)


def _column_key(header: str) -> str:
    return normalize_name(header.replace("’", " ").replace("'", " "))


def _shown(value: str) -> str:
    """A cell quoted in an error message: one line, not too long."""
    flat = _SPACES.sub(" ", value).strip()
    return flat if len(flat) <= 40 else flat[:39] + "…"


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) when it is valid, else Windows-1252 (Excel and SIECLE). A
    NUL byte, anywhere, is no text (and no database column could hold it)."""
    if b"\x00" in data:
        raise LearnerFileError([LineError(1, _("le fichier n’est pas un fichier CSV (texte)"))])
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise LearnerFileError(
            [LineError(1, _("encodage non reconnu (enregistrez le fichier en UTF-8)"))]
        ) from None


def _delimiter(sample: str) -> str:
    counts = {d: sample.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ";"


def _parse_date(value: str) -> dt.date | None:
    match = _FRENCH_DATE.match(value)
    if match:
        day, month, year = (int(g) for g in match.groups())
    else:
        match = _ISO_DATE.match(value)
        if not match:
            return None
        year, month, day = (int(g) for g in match.groups())
    try:
        parsed = dt.date(year, month, day)
    except ValueError:
        return None
    if parsed.year < 1900 or parsed > utcnow().date():
        return None
    return parsed


def _cell(cells: list[str], columns: dict[str, int], name: str) -> str:
    """The row's value for the field `name`, spaces collapsed ("" when the column is absent)."""
    index = columns.get(name)
    if index is None or index >= len(cells):
        return ""
    return _SPACES.sub(" ", cells[index]).strip()


def read_learner_file(data: bytes) -> list[LearnerRow]:
    """The rows of a learner CSV file, or LearnerFileError listing every problem."""
    text = decode(data)
    first_lines = "\n".join(text.split("\n", 10)[:10])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_lines))
    errors: list[LineError] = []
    try:
        # The header is the first line naming at least two known columns (exports sometimes
        # start with a title line), else the first non-blank line (and its missing columns are
        # reported below, before any data is read).
        header, header_line = None, 0
        for _attempt in range(10):
            candidate = next(reader, None)
            if candidate is None:
                break
            if not any(cell.strip() for cell in candidate):
                continue
            if header is None:
                header, header_line = candidate, reader.line_num
            known = {_COLUMN_FIELD.get(_column_key(cell)) for cell in candidate} - {None}
            if len(known) >= 2:
                header, header_line = candidate, reader.line_num
                break
        if header is None:
            raise LearnerFileError([LineError(1, _("le fichier est vide"))])
        columns: dict[str, int] = {}
        for index, cell in enumerate(header):
            name = _COLUMN_FIELD.get(_column_key(cell))
            if name is None:
                continue  # other columns of the export are ignored
            if name in columns:
                errors.append(
                    LineError(
                        header_line,
                        _("la colonne « %(name)s » apparaît deux fois", name=_shown(cell)),
                    )
                )
            else:
                columns[name] = index
        missing = [name for name in REQUIRED_FIELDS if name not in columns]
        if missing:
            errors.append(
                LineError(
                    header_line,
                    _(
                        "colonne(s) manquante(s) : %(names)s",
                        names=", ".join(f"« {_field_label(n)} »" for n in missing),
                    ),
                )
            )
        if errors:
            raise LearnerFileError(errors)

        rows: list[LearnerRow] = []
        total_errors = 0
        seen_ine: dict[str, int] = {}
        seen_identity: dict[tuple[str, str, dt.date | None], LearnerRow] = {}
        count = 0
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            count += 1
            if count > MAX_ROWS:
                raise LearnerFileError(
                    [
                        LineError(
                            reader.line_num,
                            _(
                                "le fichier dépasse %(max)d élèves : importez-le en plusieurs fois",
                                max=MAX_ROWS,
                            ),
                        )
                    ]
                )
            line = reader.line_num
            row_errors = []
            last_name, first_name = (
                _cell(cells, columns, "last_name"),
                _cell(cells, columns, "first_name"),
            )
            for name, value in (("last_name", last_name), ("first_name", first_name)):
                if not value:
                    row_errors.append(_("%(field)s manquant", field=_field_label(name)))
                elif len(value) > 255:
                    row_errors.append(
                        _("%(field)s trop long (255 caractères au plus)", field=_field_label(name))
                    )
            raw_date = _cell(cells, columns, "birthdate")
            birthdate = _parse_date(raw_date)
            if not raw_date:
                row_errors.append(_("date de naissance manquante"))
            elif birthdate is None:
                row_errors.append(
                    _("date de naissance invalide « %(value)s »", value=_shown(raw_date))
                )
            division = _cell(cells, columns, "division") or None
            if division is not None and len(division) > 64:
                row_errors.append(_("division trop longue (64 caractères au plus)"))
            ine = _cell(cells, columns, "national_student_id").replace(" ", "").upper() or None
            if ine is not None:
                if not INE_PATTERN.match(ine):
                    row_errors.append(
                        _(
                            "INE invalide « %(value)s » (10 chiffres et 1 lettre,"
                            " ou 9 chiffres et 2 lettres)",
                            value=_shown(_cell(cells, columns, "national_student_id")),
                        )
                    )
                elif ine in seen_ine:
                    row_errors.append(
                        _(
                            "INE « %(value)s » déjà présent ligne %(other)d",
                            value=ine,
                            other=seen_ine[ine],
                        )
                    )
                else:
                    seen_ine[ine] = line
            if not row_errors and birthdate is not None:
                row = LearnerRow(line, last_name, first_name, birthdate, division, ine)
                twin = seen_identity.get(row.identity)
                if twin is not None and (
                    twin.national_student_id is None or row.national_student_id is None
                ):
                    row_errors.append(
                        _(
                            "élève déjà présent ligne %(other)d (même nom, prénom et date"
                            " de naissance)",
                            other=twin.line,
                        )
                    )
                else:
                    seen_identity.setdefault(row.identity, row)
                    rows.append(row)
            for message in row_errors:
                total_errors += 1
                if len(errors) < MAX_ERRORS:
                    errors.append(LineError(line, message))
    except csv.Error as error:
        raise LearnerFileError(
            [LineError(reader.line_num, _("ligne illisible (%(error)s)", error=str(error)))]
        ) from None
    if errors:
        raise LearnerFileError(errors, total_errors)
    if not rows:
        raise LearnerFileError([LineError(header_line, _("le fichier ne contient aucun élève"))])
    return rows


# -- importing ------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    disabled: int = 0
    reenabled: int = 0  # among `updated`: learners back in the list

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "disabled": self.disabled,
            "reenabled": self.reenabled,
        }


def import_learners(
    session: Session,
    organization: Organization,
    source: bytes | IO[bytes] | Iterable[LearnerRow],
) -> ImportReport:
    """Replace the school's learner list with the file's (see the module's docstring)."""
    if organization.type is not OrganizationType.SCO:
        raise InvalidInput(
            "learner lists can only be imported into a school (SCO)", code="not_a_school"
        )
    if isinstance(source, bytes):
        rows = read_learner_file(source)
    elif hasattr(source, "read"):
        rows = read_learner_file(source.read())
    else:
        rows = list(source)

    existing = list(
        session.scalars(
            select(Learner).where(Learner.organization_id == organization.id).order_by(Learner.id)
        )
    )
    by_ine = {x.national_student_id: x for x in existing if x.national_student_id}
    by_identity: dict[tuple[str, str, dt.date | None], list[Learner]] = {}
    learner: Learner | None
    for learner in existing:
        by_identity.setdefault(
            identity(learner.last_name, learner.first_name, learner.birthdate), []
        ).append(learner)

    matched: dict[int, int] = {}  # learner id → line
    errors: list[LineError] = []
    plan: list[tuple[LearnerRow, Learner | None]] = []
    for row in rows:
        learner = by_ine.get(row.national_student_id) if row.national_student_id else None
        if learner is None:
            candidates = [
                x
                for x in by_identity.get(row.identity, [])
                if x.id not in matched
                and (row.national_student_id is None or x.national_student_id is None)
            ]
            learner = candidates[0] if candidates else None
        if learner is not None and learner.id in matched:
            errors.append(
                LineError(
                    row.line,
                    _("même élève que ligne %(other)d", other=matched[learner.id]),
                )
            )
            continue
        if learner is not None:
            matched[learner.id] = row.line
        plan.append((row, learner))
    if errors:
        raise LearnerFileError(errors)

    report = ImportReport()
    new: list[dict[str, object]] = []
    for row, learner in plan:
        if learner is None:
            new.append(
                {
                    "organization_id": organization.id,
                    "first_name": row.first_name,
                    "last_name": row.last_name,
                    "birthdate": row.birthdate,
                    "division": row.division,
                    "national_student_id": row.national_student_id,
                    "is_disabled": False,
                }
            )
            report.created += 1
            continue
        changes = {
            "first_name": row.first_name,
            "last_name": row.last_name,
            "birthdate": row.birthdate,
            "division": row.division,
            "is_disabled": False,
        }
        if row.national_student_id:
            changes["national_student_id"] = row.national_student_id
        changed = False
        if learner.is_disabled:
            report.reenabled += 1
        for name, value in changes.items():
            if getattr(learner, name) != value:
                setattr(learner, name, value)
                changed = True
        if changed:
            report.updated += 1
        else:
            report.unchanged += 1
    for learner in existing:
        if learner.id not in matched and not learner.is_disabled:
            learner.is_disabled = True
            report.disabled += 1
    session.flush()
    if new:
        # One batched statement (executemany), not one INSERT … RETURNING per learner.
        session.execute(insert(Learner), new)
    return report


# -- the list -------------------------------------------------------------------------------------


class LoginMethod:
    EMAIL = "email"
    USERNAME = "username"
    GAR = "gar"
    LMS = "lms"


@dataclass
class LearnerLine:
    learner: Learner
    user: User | None
    participations: int
    last_status: ParticipationStatus | None
    last_participation_at: dt.datetime | None
    methods: list[str] = field(default_factory=list)

    @property
    def can_reset_password(self) -> bool:
        return LoginMethod.EMAIL in self.methods or LoginMethod.USERNAME in self.methods

    @property
    def can_create_username(self) -> bool:
        return self.user is not None and self.user.email is None and self.user.username is None


def _live_in_organization(organization_id: int) -> ColumnElement[bool]:
    return and_(
        Participation.campaign_id == Campaign.id,
        Campaign.organization_id == organization_id,
        Participation.is_improved.is_(False),
        Participation.deleted_at.is_(None),
    )


def _name_filter(q: str, *columns: SQLCoreOperations[str | None]) -> ColumnElement[bool]:
    """Every word of `q` appears in one of the columns (case-insensitive)."""
    conditions = []
    for word in q.lower().split()[:5]:
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(or_(*(func.lower(c).like(f"%{escaped}%", escape="\\") for c in columns)))
    return and_(*conditions)


def divisions(session: Session, organization: Organization) -> list[str]:
    return list(
        session.scalars(
            select(Learner.division)
            .where(Learner.organization_id == organization.id, Learner.division.is_not(None))
            .distinct()
            .order_by(Learner.division)
        )
    )


def learner_page(
    session: Session,
    organization: Organization,
    *,
    q: str = "",
    division: str | None = None,
    include_disabled: bool = False,
    page: int = 1,
) -> pagination.Page[LearnerLine]:
    """One page of the school's learners with their login methods and participations: four
    queries whatever the page size (count, page with aggregates, login methods)."""
    conditions = [Learner.organization_id == organization.id]
    if not include_disabled:
        conditions.append(Learner.is_disabled.is_(False))
    if division:
        conditions.append(Learner.division == division)
    if q.strip():
        conditions.append(_name_filter(q, Learner.last_name, Learner.first_name))
    total = session.scalar(select(func.count()).select_from(Learner).where(*conditions)) or 0
    listing = pagination.clamp(page, total=total, per_page=PAGE_SIZE)

    # A learner's participations: those linked to the learner, and those of their account in the
    # school's campaigns made before the account was linked.
    mine = or_(
        Participation.learner_id == Learner.id,
        and_(Learner.user_id.is_not(None), Participation.user_id == Learner.user_id),
    )
    in_org = _live_in_organization(organization.id)
    count = (
        select(func.count(Participation.id))
        .select_from(Participation)
        .join(Campaign, Campaign.id == Participation.campaign_id)
        .where(in_org, mine)
        .correlate(Learner)
        .scalar_subquery()
    )
    latest = (
        select(Participation.id)
        .join(Campaign, Campaign.id == Participation.campaign_id)
        .where(in_org, mine)
        .order_by(Participation.created_at.desc(), Participation.id.desc())
        .limit(1)
        .correlate(Learner)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Learner, User, count, latest)
        .outerjoin(User, User.id == Learner.user_id)
        .where(*conditions)
        .order_by(func.lower(Learner.last_name), func.lower(Learner.first_name), Learner.id)
        .limit(listing.per_page)
        .offset(listing.offset)
    ).all()
    latest_ids = [r[3] for r in rows if r[3] is not None]
    statuses = {
        pid: (status, created)
        for pid, status, created in session.execute(
            select(Participation.id, Participation.status, Participation.created_at).where(
                Participation.id.in_(latest_ids)
            )
        )
    }
    methods = login_methods(session, [r[1] for r in rows if r[1] is not None])
    items = []
    for learner, user, participations, latest_id in rows:
        status, created = statuses.get(latest_id, (None, None))
        items.append(
            LearnerLine(
                learner=learner,
                user=user,
                participations=participations or 0,
                last_status=status,
                last_participation_at=created,
                methods=methods.get(user.id, []) if user is not None else [],
            )
        )
    return listing.with_items(items)


def login_methods(session: Session, users: Sequence[User]) -> dict[int, list[str]]:
    """How each user signs in (LoginMethod values), in one query."""
    found: dict[int, set[str]] = {u.id: set() for u in users}
    by_id = {u.id: u for u in users}
    if not users:
        return {}
    for user_id, provider in session.execute(
        select(AuthenticationMethod.user_id, AuthenticationMethod.provider).where(
            AuthenticationMethod.user_id.in_(list(by_id))
        )
    ):
        user = by_id[user_id]
        if provider is AuthenticationProvider.PASSWORD:
            if user.email:
                found[user_id].add(LoginMethod.EMAIL)
            if user.username:
                found[user_id].add(LoginMethod.USERNAME)
        elif provider is AuthenticationProvider.SAML:
            found[user_id].add(LoginMethod.GAR)
        elif provider is AuthenticationProvider.LTI:
            found[user_id].add(LoginMethod.LMS)
    order = [LoginMethod.EMAIL, LoginMethod.USERNAME, LoginMethod.GAR, LoginMethod.LMS]
    return {uid: [m for m in order if m in kinds] for uid, kinds in found.items()}


@dataclass
class ParticipantLine:
    user: User
    participations: int
    last_participation_at: dt.datetime | None


def participant_page(
    session: Session, organization: Organization, *, q: str = "", page: int = 1
) -> pagination.Page[ParticipantLine]:
    """Organizations without a learner list (SUP, PRO): the people who took part in their
    campaigns, with how many participations and the latest one's date."""
    in_org = and_(
        Campaign.organization_id == organization.id,
        Participation.is_improved.is_(False),
        Participation.deleted_at.is_(None),
    )
    grouped = (
        select(
            Participation.user_id.label("user_id"),
            func.count(Participation.id).label("participations"),
            func.max(Participation.created_at).label("last_at"),
        )
        .join(Campaign, Campaign.id == Participation.campaign_id)
        .where(in_org)
        .group_by(Participation.user_id)
        .subquery()
    )
    conditions = []
    if q.strip():
        conditions.append(_name_filter(q, User.last_name, User.first_name, User.email))
    total = (
        session.scalar(
            select(func.count())
            .select_from(grouped)
            .join(User, User.id == grouped.c.user_id)
            .where(*conditions)
        )
        or 0
    )
    listing = pagination.clamp(page, total=total, per_page=PAGE_SIZE)
    rows = session.execute(
        select(User, grouped.c.participations, grouped.c.last_at)
        .join(grouped, grouped.c.user_id == User.id)
        .where(*conditions)
        .order_by(func.lower(User.last_name), func.lower(User.first_name), User.id)
        .limit(listing.per_page)
        .offset(listing.offset)
    ).all()
    items = [ParticipantLine(user, count, last_at) for user, count, last_at in rows]
    return listing.with_items(items)


# -- helping students sign in ---------------------------------------------------------------------


class LoginNotManaged(ServiceError):
    """The school may not change this learner's login (none, or single sign-on only)."""


def organization_learner(
    session: Session, organization: Organization, learner_id: int
) -> Learner | None:
    return session.scalars(
        select(Learner).where(
            Learner.id == learner_id,
            Learner.organization_id == organization.id,
            # A learner no longer on the school's list is no longer the school's to manage.
            Learner.is_disabled.is_(False),
        )
    ).one_or_none()


def _student_account(session: Session, learner: Learner) -> User:
    """The learner's account, if the school may help with it: never a member of any
    organization (a teacher's account is not a student's to reset)."""
    user = session.get(User, learner.user_id) if learner.user_id is not None else None
    if user is None:
        raise LoginNotManaged("this learner has no account yet", code="no_account")
    if session.scalar(select(Membership.id).where(Membership.user_id == user.id).limit(1)):
        raise LoginNotManaged("this account belongs to an organization member", code="staff")
    return user


def password_account(session: Session, learner: Learner) -> User:
    """The account whose password the school may reset: one that signs in with an e-mail or an
    identifiant. Raises `LoginNotManaged` otherwise (no account, single sign-on only, staff);
    changes nothing, so the confirmation page asks only when the reset can be done."""
    user = _student_account(session, learner)
    kinds = login_methods(session, [user]).get(user.id, [])
    if LoginMethod.EMAIL not in kinds and LoginMethod.USERNAME not in kinds:
        raise LoginNotManaged("this learner signs in through single sign-on only", code="sso_only")
    return user


def reset_password(session: Session, learner: Learner) -> tuple[User, str]:
    """A temporary password for a learner who signs in with an e-mail or an identifiant; they
    choose their own at the next sign-in, and their open sessions end. Single sign-on accounts
    (GAR, LMS) are never touched."""
    user = password_account(session, learner)
    password = users.generate_password()
    users.set_password(session, user, password, must_change=True)
    sessions.revoke_sessions(session, user)
    session.flush()
    return user, password


def _username_base(learner: Learner) -> str:
    def part(value: str) -> str:
        return normalize_name(value).replace(" ", "")

    base = f"{part(learner.first_name)}.{part(learner.last_name)}".strip(".") or "eleve"
    if learner.birthdate is not None:
        base += learner.birthdate.strftime("%d%m")
    return base[:240]


def create_username(session: Session, learner: Learner) -> tuple[User, str, str]:
    """An identifiant (prenom.nom + birth day and month, made unique) and a temporary password
    for a learner's account that has neither e-mail nor identifiant (e.g. a GAR student who
    also needs to sign in outside the ENT). Single sign-on logins are kept as they are."""
    user = _student_account(session, learner)
    if user.email is not None or user.username is not None:
        raise LoginNotManaged("this learner already has a login", code="has_login")
    base = _username_base(learner)
    escaped = base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    taken = set(
        session.scalars(select(User.username).where(User.username.like(f"{escaped}%", escape="\\")))
    )
    username, suffix = base, 1
    while username in taken:
        suffix += 1
        username = f"{base}{suffix}"
    user.username = username
    password = users.generate_password()
    users.set_password(session, user, password, must_change=True)
    session.flush()
    return user, username, password


class LearnerTaken(ServiceError):
    """The learner is already linked to another account: one learner, one user."""

    def __init__(self) -> None:
        super().__init__("the learner is linked to another account", code="learner_taken")


class AlreadyLinked(ServiceError):
    """The account is already another learner of this school: one user, one learner per school."""

    def __init__(self) -> None:
        super().__init__("the account is another learner of this school", code="user_linked")


def attach_learner(
    session: Session, organization: Organization, learner_id: int, user: User
) -> Learner:
    """Link `user` to the learner `learner_id` of `organization` (a connector matched them),
    for good. Linking again the same pair changes nothing; a learner linked to someone else,
    or an account that is another learner of the school, is refused with a typed error."""
    learner = session.scalar(
        select(Learner).where(
            Learner.id == learner_id,
            Learner.organization_id == organization.id,
            Learner.is_disabled.is_(False),
        )
    )
    if learner is None:
        raise ServiceError("no such learner in this organization", code="unknown_learner")
    if learner.user_id == user.id:
        return learner
    if learner.user_id is not None:
        raise LearnerTaken()
    other = session.scalar(
        select(Learner.id).where(
            Learner.organization_id == organization.id, Learner.user_id == user.id
        )
    )
    if other is not None:
        raise AlreadyLinked()
    users.require_proven(user)
    # Only while nobody holds it: of two connectors racing for one learner, one wins.
    try:
        with session.begin_nested():
            claimed = execute_dml(
                session,
                update(Learner)
                .where(Learner.id == learner.id, Learner.user_id.is_(None))
                .values(user_id=user.id)
                .execution_options(synchronize_session=False),
            ).rowcount
    except IntegrityError:  # linked meanwhile to another learner of the school
        raise AlreadyLinked() from None
    session.refresh(learner)
    if not claimed and learner.user_id != user.id:
        raise LearnerTaken()
    # Participations started before the match now count for the learner in the school's results.
    execute_dml(
        session,
        update(Participation)
        .where(
            Participation.user_id == user.id,
            Participation.learner_id.is_(None),
            Participation.campaign_id.in_(
                select(Campaign.id).where(Campaign.organization_id == organization.id)
            ),
        )
        .values(learner_id=learner.id)
        .execution_options(synchronize_session=False),
    )
    return learner
