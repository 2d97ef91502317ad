"""The organization's campaigns as teachers manage them: the list with its figures, the creation
and edit forms, archiving. Functions take the session first, flush and never commit.

Forms are parsed here (not in the views) so that every rule — what a type allows, which target
profiles, competences and owners an organization may use, what can still change once students
took part — is checked on the server whatever the browser sent. Field errors are returned as codes
keyed by field name (or by the group of fields they concern); the views turn them into translated
messages.

What an assessment tests is a target profile or one competence. A competence is tested through
its competence profile: the pack's profile made of that competence alone (see
`ContentPack.competence_profiles`), synced into the database like every pack profile. So a
campaign always points at a target profile, and the forms offer competence profiles as
competences, never among the profiles.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.functions import FunctionElement

from campaigns.shared import pagination
from campaigns.shared.codes import generate_code
from campaigns.shared.content import active_pack
from campaigns.shared.errors import InvalidInput, ServiceError
from campaigns.shared.models import (
    Campaign,
    CampaignSkill,
    CampaignType,
    Membership,
    Organization,
    Participation,
    ParticipationStatus,
    TargetProfile,
    User,
)
from config.db import utcnow
from config.numbers import parse_int
from engine.content import ContentPack
from engine.selection import DEFAULT_SELECTOR, SELECTORS

PER_PAGE = 25
NAME_MAX = 255
TITLE_MAX = 255
EXTERNAL_ID_LABEL_MAX = 255
LANDING_TEXT_MAX = 5000
SEARCH_MAX = 100

# Accented letters folded for sorting and searching, case and accents aside.
_ACCENTED = "àâäáãåçéèêëîïíìñôöóòõùûüúÿý"
_PLAIN = "aaaaaaceeeeiiiinooooouuuuyy"
# SQLite has no translate() and its lower() folds ASCII only; its parser also refuses deeply
# nested calls (about 33 replace()), so it folds the letters French names actually use.
_SQLITE_FOLDS = (
    ("É", "e"), ("È", "e"), ("Ê", "e"), ("À", "a"), ("Â", "a"), ("Ç", "c"), ("Î", "i"),
    ("Ô", "o"), ("Œ", "oe"), ("œ", "oe"), ("æ", "ae"), ("é", "e"), ("è", "e"), ("ê", "e"),
    ("ë", "e"), ("à", "a"), ("â", "a"), ("ä", "a"), ("ç", "c"), ("î", "i"), ("ï", "i"),
    ("ô", "o"), ("ö", "o"), ("ù", "u"), ("û", "u"), ("ü", "u"),
)  # fmt: skip


class _Folded(FunctionElement[str]):
    """`lower(column)` without accents; see the dialect-specific compilations below."""

    type = String()
    name = "parcours_fold"
    inherit_cache = True


@compiles(_Folded)
def _fold_sqlite(element: _Folded, compiler: Any, **kw: Any) -> str:
    expression: str = compiler.process(func.lower(*element.clauses.clauses), **kw)
    for accented, plain in _SQLITE_FOLDS:
        expression = f"replace({expression}, '{accented}', '{plain}')"
    return expression


@compiles(_Folded, "postgresql")
def _fold_postgresql(element: _Folded, compiler: Any, **kw: Any) -> str:
    expression = compiler.process(func.lower(*element.clauses.clauses), **kw)
    translated = f"translate({expression}, '{_ACCENTED}', '{_PLAIN}')"
    return f"replace(replace({translated}, 'œ', 'oe'), 'æ', 'ae')"


def _folded(column: ColumnElement[str] | InstrumentedAttribute[str]) -> ColumnElement[str]:
    """`column` lower-cased and without accents, in SQL that SQLite and PostgreSQL both run."""
    return _Folded(column)


def fold(text: str) -> str:
    """The Python twin of `_folded`, for search terms."""
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("œ", "oe").replace("æ", "ae"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- the list -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    code: str
    type: CampaignType
    owner_id: int
    owner_first_name: str
    owner_last_name: str
    created_at: object
    archived_at: object
    participants: int
    shared: int

    @property
    def owner_name(self) -> str:
        return f"{self.owner_first_name} {self.owner_last_name}".strip()


def list_campaigns(
    session: Session,
    organization: Organization,
    *,
    user: User,
    search: str = "",
    mine: bool = False,
    archived: bool = False,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> pagination.Page[CampaignRow]:
    """One page of the organization's campaigns, alphabetical (case and accents aside), with
    their live participants and results received. Two statements whatever the page size: the
    total, then the page joined to its figures aggregated over that page's campaigns only."""
    conditions: list[ColumnElement[bool]] = [
        Campaign.organization_id == organization.id,
        Campaign.archived_at.is_not(None) if archived else Campaign.archived_at.is_(None),
    ]
    if mine:
        conditions.append(Campaign.owner_id == user.id)
    term = fold(" ".join(search.split()))[:SEARCH_MAX]
    if term:
        pattern = _like_pattern(term)
        conditions.append(
            or_(
                _folded(Campaign.name).like(pattern, escape="\\"),
                func.lower(Campaign.code).like(pattern, escape="\\"),
            )
        )

    total = session.scalar(select(func.count()).select_from(Campaign).where(*conditions)) or 0
    listing = pagination.clamp(page, total=total, per_page=per_page)

    # The page's campaign ids, as a CTE: SQLite's parser refuses the fold nested any deeper.
    sort_key = _folded(Campaign.name).label("sort_key")
    page_ids = (
        select(Campaign.id.label("id"), sort_key, Campaign.name.label("name"))
        .where(*conditions)
        .order_by(sort_key, Campaign.name, Campaign.id)
        .limit(listing.per_page)
        .offset(listing.offset)
        .cte("page_ids")
    )
    figures = (
        select(
            Participation.campaign_id.label("campaign_id"),
            func.count().label("participants"),
            func.coalesce(
                func.sum(case((Participation.status == ParticipationStatus.SHARED, 1), else_=0)),
                0,
            ).label("shared"),
        )
        .where(
            Participation.campaign_id.in_(select(page_ids.c.id)),
            Participation.is_improved.is_(False),
            Participation.deleted_at.is_(None),
        )
        .group_by(Participation.campaign_id)
        .subquery("figures")
    )
    statement = (
        select(
            Campaign.id,
            Campaign.name,
            Campaign.code,
            Campaign.type,
            Campaign.owner_id,
            User.first_name,
            User.last_name,
            Campaign.created_at,
            Campaign.archived_at,
            func.coalesce(figures.c.participants, 0),
            func.coalesce(figures.c.shared, 0),
        )
        .join(page_ids, page_ids.c.id == Campaign.id)
        .join(User, User.id == Campaign.owner_id)
        .outerjoin(figures, figures.c.campaign_id == Campaign.id)
        .order_by(page_ids.c.sort_key, page_ids.c.name, page_ids.c.id)
    )
    return listing.with_items(
        CampaignRow(
            id=row[0],
            name=row[1],
            code=row[2],
            type=row[3],
            owner_id=row[4],
            owner_first_name=row[5],
            owner_last_name=row[6],
            created_at=row[7],
            archived_at=row[8],
            participants=int(row[9]),
            shared=int(row[10]),
        )
        for row in session.execute(statement)
    )


def has_campaigns(session: Session, organization: Organization) -> bool:
    """Whether the organization has any campaign at all (to tell an empty organization from an
    empty search)."""
    found = session.scalar(
        select(Campaign.id).where(Campaign.organization_id == organization.id).limit(1)
    )
    return found is not None


# -- choices offered by the forms -----------------------------------------------------------------


@dataclass(frozen=True)
class CompetenceChoice:
    """A competence a campaign can test alone, through its competence profile."""

    id: str  # "1.1"
    title: str
    area_title: str
    target_profile_id: int

    @property
    def label(self) -> str:
        return f"{self.id} {self.title}"


def _usable_profile(organization: Organization) -> ColumnElement[bool]:
    """A public profile or one of the organization's own, not archived."""
    return and_(
        or_(
            TargetProfile.organization_id.is_(None),
            TargetProfile.organization_id == organization.id,
        ),
        TargetProfile.is_archived.is_(False),
    )


def _competence_profile_keys(session: Session) -> list[str]:
    """The content keys of the active pack's competence profiles."""
    return [spec.id for spec in active_pack(session).competence_profiles.values()]


def _not_a_competence_profile(keys: list[str]) -> ColumnElement[bool]:
    # `content_key NOT IN (…)` is NULL, not true, for the organizations' own profiles.
    return or_(TargetProfile.content_key.is_(None), TargetProfile.content_key.not_in(keys))


def usable_target_profiles(session: Session, organization: Organization) -> list[TargetProfile]:
    """Target profiles the organization may assess: the public ones and its own, not archived,
    alphabetical — competence profiles aside (they are offered as competences)."""
    return list(
        session.scalars(
            select(TargetProfile)
            .where(
                _usable_profile(organization),
                _not_a_competence_profile(_competence_profile_keys(session)),
            )
            .order_by(_folded(TargetProfile.name), TargetProfile.id)
        )
    )


def assessable_competences(session: Session) -> list[CompetenceChoice]:
    """The competences of the active pack a campaign can test alone, in the pack's order: those
    whose competence profile is in the database, public and not archived."""
    pack = active_pack(session)
    specs = pack.competence_profiles
    if not specs:
        return []
    profile_ids: dict[str | None, int] = {
        key: id
        for key, id in session.execute(
            select(TargetProfile.content_key, TargetProfile.id).where(
                TargetProfile.content_key.in_([spec.id for spec in specs.values()]),
                TargetProfile.organization_id.is_(None),
                TargetProfile.is_archived.is_(False),
            )
        )
    }
    return [
        _choice(pack, competence_id, profile_ids[spec.id])
        for competence_id, spec in specs.items()
        if spec.id in profile_ids
    ]


def assessed_competence(session: Session, profile: TargetProfile) -> CompetenceChoice | None:
    """The competence a campaign on `profile` tests, when `profile` is a competence profile of
    the active pack (archived or not: campaigns keep theirs); else None."""
    if profile.content_key is None or profile.organization_id is not None:
        return None
    pack = active_pack(session)
    for competence_id, spec in pack.competence_profiles.items():
        if spec.id == profile.content_key:
            return _choice(pack, competence_id, profile.id)
    return None


def _choice(pack: ContentPack, competence_id: str, profile_id: int) -> CompetenceChoice:
    competence = pack.competence_by_id[competence_id]
    area = next(a for a in pack.areas if a.id == competence.area_id)
    return CompetenceChoice(competence.id, competence.title, area.title, profile_id)


def members(session: Session, organization: Organization) -> list[User]:
    """The organization's members, who may own its campaigns."""
    return list(
        session.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == organization.id)
            .order_by(_folded(User.last_name), _folded(User.first_name), User.id)
        )
    )


def live_participations_count(session: Session, campaign: Campaign) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Participation)
            .where(
                Participation.campaign_id == campaign.id,
                Participation.deleted_at.is_(None),
            )
        )
        or 0
    )


# -- forms ----------------------------------------------------------------------------------------


@dataclass
class CampaignForm:
    """What the creation or edit form holds, as typed (strings), plus the errors found in it.

    `errors` maps a field name to an error code (see the views for the messages)."""

    name: str = ""
    type: str = ""
    target_profile_id: str = ""
    competence_id: str = ""
    ask_external_id: str = "non"
    external_id_label: str = ""
    title: str = ""
    landing_text: str = ""
    multiple_sendings: str = "non"
    owner_id: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: Mapping[str, str]) -> CampaignForm:
        def value(key: str, limit: int = 10_000) -> str:
            return str(data.get(key, "") or "")[:limit]

        return cls(
            name=value("name", 1000),
            type=value("type", 64),
            target_profile_id=value("target_profile_id", 64),
            competence_id=value("competence_id", 64),
            ask_external_id=value("ask_external_id", 16) or "non",
            external_id_label=value("external_id_label", 1000),
            title=value("title", 1000),
            landing_text=value("landing_text", LANDING_TEXT_MAX + 1000).replace("\r\n", "\n"),
            multiple_sendings=value("multiple_sendings", 16),
            owner_id=value("owner_id", 64),
        )

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignForm:
        return cls(
            name=campaign.name,
            type=campaign.type.value,
            target_profile_id=str(campaign.target_profile_id or ""),
            ask_external_id="oui" if campaign.external_id_label else "non",
            external_id_label=campaign.external_id_label or "",
            title=campaign.title or "",
            landing_text=campaign.landing_text or "",
            multiple_sendings="oui" if campaign.multiple_sendings else "non",
            owner_id=str(campaign.owner_id),
        )


class FormInvalid(InvalidInput):
    def __init__(self, form: CampaignForm) -> None:
        super().__init__(f"invalid campaign form: {sorted(form.errors)}", code="form")
        self.form = form


@dataclass(frozen=True)
class _Common:
    name: str
    external_id_label: str | None
    landing_text: str | None
    multiple_sendings: bool
    owner: User | None


def _check_common(session: Session, organization: Organization, form: CampaignForm) -> _Common:
    """The fields creation and edit share; errors are added to `form.errors`."""
    errors = form.errors
    name = " ".join(form.name.split())
    if not name:
        errors["name"] = "required"
    elif len(name) > NAME_MAX:
        errors["name"] = "too_long"

    label: str | None = None
    if form.ask_external_id not in ("oui", "non"):
        errors["ask_external_id"] = "invalid"
    elif form.ask_external_id == "oui":
        label = " ".join(form.external_id_label.split())
        if not label:
            errors["external_id_label"] = "required"
        elif len(label) > EXTERNAL_ID_LABEL_MAX:
            errors["external_id_label"] = "too_long"

    landing_text = form.landing_text.strip()
    if len(landing_text) > LANDING_TEXT_MAX:
        errors["landing_text"] = "too_long"

    if form.multiple_sendings not in ("oui", "non"):
        errors["multiple_sendings"] = "invalid"

    owner = None
    owner_id = parse_int(form.owner_id, None)
    if owner_id is None:
        errors["owner_id"] = "unknown"
    else:
        owner = session.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == organization.id, User.id == owner_id)
        ).one_or_none()
        if owner is None:
            errors["owner_id"] = "unknown"
    return _Common(name, label, landing_text or None, form.multiple_sendings == "oui", owner)


def _check_title(form: CampaignForm, type: CampaignType | None) -> str | None:
    """The path title is for assessments only; a collection keeps none."""
    if type is not CampaignType.ASSESSMENT:
        return None
    title = " ".join(form.title.split())
    if len(title) > TITLE_MAX:
        form.errors["title"] = "too_long"
    return title or None


def _check_assessed(
    session: Session, organization: Organization, form: CampaignForm, type: CampaignType | None
) -> TargetProfile | None:
    """What the campaign tests: a target profile or one competence — exactly one of them for an
    assessment, neither for a profiles collection. Errors on the pair are keyed `target` (the
    group of both fields), errors on one value by its field."""
    errors = form.errors
    profile_id, competence_id = form.target_profile_id, form.competence_id
    if type is CampaignType.PROFILES_COLLECTION:
        if profile_id:
            errors["target_profile_id"] = "forbidden"
        if competence_id:
            errors["competence_id"] = "forbidden"
        return None
    if profile_id and competence_id:
        errors["target"] = "both"
        return None
    if competence_id:
        choice = next((c for c in assessable_competences(session) if c.id == competence_id), None)
        profile = session.get(TargetProfile, choice.target_profile_id) if choice else None
        if profile is None:
            errors["competence_id"] = "unknown"
        return profile
    if profile_id:
        profile = None
        wanted = parse_int(profile_id, None)
        if wanted is not None:
            profile = session.scalars(
                select(TargetProfile).where(
                    TargetProfile.id == wanted,
                    _usable_profile(organization),
                    _not_a_competence_profile(_competence_profile_keys(session)),
                )
            ).one_or_none()
        if profile is None:
            errors["target_profile_id"] = "unknown"
        return profile
    if type is CampaignType.ASSESSMENT:
        errors["target"] = "required"
    return None


def create_from_form(
    session: Session, organization: Organization, creator: User, form: CampaignForm
) -> Campaign:
    """Create the campaign the form describes, or raise `FormInvalid` with every field error."""
    form.multiple_sendings = form.multiple_sendings or "non"
    common = _check_common(session, organization, form)
    errors = form.errors
    type = CampaignType(form.type) if form.type in set(CampaignType) else None
    if type is None:
        errors["type"] = "required" if not form.type else "invalid"

    profile = _check_assessed(session, organization, form, type)
    title = _check_title(form, type)
    if errors or type is None:
        raise FormInvalid(form)
    campaign = create_campaign(
        session,
        organization=organization,
        creator=creator,
        name=common.name,
        type=type,
        target_profile=profile,
        title=title,
        landing_text=common.landing_text,
        external_id_label=common.external_id_label,
        multiple_sendings=common.multiple_sendings,
        owner=common.owner,
    )
    session.flush()
    return campaign


class CampaignArchived(ServiceError):
    pass


def update_from_form(
    session: Session, organization: Organization, campaign: Campaign, form: CampaignForm
) -> Campaign:
    """Apply the edit form. Type and target profile never change; multiple sendings only while
    nobody took part; an archived campaign is not edited."""
    if campaign.archived_at is not None:
        raise CampaignArchived("an archived campaign cannot be edited", code="archived")
    if not form.multiple_sendings:  # not sent: shown disabled since students took part
        form.multiple_sendings = "oui" if campaign.multiple_sendings else "non"
    common = _check_common(session, organization, form)
    title = _check_title(form, campaign.type)
    if (
        common.multiple_sendings != campaign.multiple_sendings
        and "multiple_sendings" not in form.errors
        and live_participations_count(session, campaign) > 0
    ):
        form.errors["multiple_sendings"] = "locked"
    if form.errors or common.owner is None:
        raise FormInvalid(form)
    campaign.name = common.name
    campaign.title = title
    campaign.landing_text = common.landing_text
    campaign.external_id_label = common.external_id_label
    campaign.multiple_sendings = common.multiple_sendings
    campaign.owner_id = common.owner.id
    session.flush()
    return campaign


# -- archive --------------------------------------------------------------------------------------


def archive(session: Session, campaign: Campaign, by: User) -> None:
    """Archive the campaign (students can no longer join it); archiving twice changes nothing."""
    if campaign.archived_at is None:
        campaign.archived_at = utcnow()
        campaign.archived_by_id = by.id
        session.flush()


def unarchive(session: Session, campaign: Campaign) -> None:
    if campaign.archived_at is not None:
        campaign.archived_at = None
        campaign.archived_by_id = None
        session.flush()


def create_campaign(
    session: Session,
    *,
    organization: Organization,
    creator: User,
    name: str,
    type: CampaignType,
    target_profile: TargetProfile | None = None,
    title: str | None = None,
    landing_text: str | None = None,
    external_id_label: str | None = None,
    multiple_sendings: bool = False,
    owner: User | None = None,
    selector: str = DEFAULT_SELECTOR,
) -> Campaign:
    """Create a campaign with a fresh code; an assessment campaign freezes its skills now."""

    name = " ".join(name.split())
    if not name:
        raise InvalidInput("the campaign name is required", code="name")
    if landing_text and len(landing_text) > LANDING_TEXT_MAX:
        raise InvalidInput("the landing text is limited to 5000 characters", code="landing_text")
    if (type is CampaignType.ASSESSMENT) != (target_profile is not None):
        raise InvalidInput(
            "an assessment campaign needs a target profile; a profiles collection has none",
            code="target_profile",
        )
    if selector not in SELECTORS:
        raise InvalidInput(f"unknown selector {selector!r}", code="selector")
    pack = active_pack(session)
    campaign = Campaign(
        organization_id=organization.id,
        type=type,
        name=name,
        title=(title or "").strip() or None,
        landing_text=(landing_text or "").strip() or None,
        external_id_label=(external_id_label or "").strip() or None,
        multiple_sendings=multiple_sendings,
        target_profile_id=target_profile.id if target_profile else None,
        owner_id=(owner or creator).id,
        creator_id=creator.id,
        content_version=f"{pack.id}@{pack.version}",
        selector=selector,
    )
    if target_profile is not None:
        skills = pack.profile_skills((t.tube_id, t.level) for t in target_profile.tubes)
        campaign.skills = [CampaignSkill(skill_id=s.id) for s in skills]
    for _ in range(20):
        campaign.code = generate_code()
        try:
            with session.begin_nested():
                session.add(campaign)
            return campaign
        except IntegrityError:  # the code was taken meanwhile: draw another
            if campaign in session:
                session.expunge(campaign)
            continue
    raise ServiceError("could not find a free campaign code")
