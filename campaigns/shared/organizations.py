"""Organizations (schools, colleges, other bodies): created, renamed and listed under the rules
that a UAI or the name of an organization without one is taken once."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.shared.errors import AlreadyExists, InvalidInput
from campaigns.shared.models import (
    NAME_MAX_LENGTH,
    Membership,
    MembershipRole,
    Organization,
    OrganizationType,
    User,
)

UAI_PATTERN = re.compile(r"^\d{7}[A-Z]$")


def normalize_uai(raw: str) -> str:
    uai = raw.strip().upper()
    if not UAI_PATTERN.match(uai):
        raise InvalidInput(f"invalid UAI {raw.strip()!r}: expected 7 digits and a letter")
    return uai


def _organization_fields(
    session: Session,
    *,
    name: str,
    type: OrganizationType,
    uai: str | None,
    excluding: int | None = None,
) -> tuple[str, str | None]:
    """The organization's name and UAI as stored, checked against the rules (name required,
    UAI well formed and only for schools) and against the other organizations (a UAI, or the name
    of an organization without one, is taken once). `code` names the field at fault."""
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("the organization name is required", code="name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(
            f"the organization name is limited to {NAME_MAX_LENGTH} characters", code="name"
        )
    if uai is not None and uai.strip():
        if type is not OrganizationType.SCO:
            raise InvalidInput("only schools (type SCO) have a UAI", code="uai_not_school")
        try:
            uai = normalize_uai(uai)
        except InvalidInput as error:
            raise InvalidInput(str(error), code="uai") from None
    else:
        uai = None

    duplicate = (
        select(Organization.id).where(Organization.uai == uai)
        if uai
        else select(Organization.id).where(Organization.uai.is_(None), Organization.name == name)
    )
    if excluding is not None:
        duplicate = duplicate.where(Organization.id != excluding)
    existing_id = session.scalar(duplicate)
    if existing_id is not None:
        what = f"UAI {uai}" if uai else f"name {name!r}"
        raise AlreadyExists(
            f"an organization with {what} already exists (id {existing_id})",
            code="duplicate_uai" if uai else "duplicate_name",
        )
    return name, uai


def create_organization(
    session: Session, *, name: str, type: OrganizationType, uai: str | None = None
) -> Organization:
    """Create an organization, with nobody in it: its first admin joins by accepting an
    invitation (`team.add_member`), as every member does."""
    name, uai = _organization_fields(session, name=name, type=type, uai=uai)
    organization = Organization(name=name, type=type, uai=uai)
    try:
        with session.begin_nested():
            session.add(organization)
    except IntegrityError:  # a concurrent creation won the race
        what = f"UAI {uai}" if uai else f"name {name!r}"
        raise AlreadyExists(
            f"an organization with {what} already exists",
            code="duplicate_uai" if uai else "duplicate_name",
        ) from None
    return organization


def update_organization(
    session: Session,
    organization: Organization,
    *,
    name: str,
    type: OrganizationType,
    uai: str | None,
) -> dict[str, list[str | None]]:
    """Change the organization's name, type and UAI under the rules of `create_organization`;
    what changed, as {field: [before, after]} (empty when nothing did)."""
    name, uai = _organization_fields(
        session, name=name, type=type, uai=uai, excluding=organization.id
    )
    before = {"name": organization.name, "type": organization.type.value, "uai": organization.uai}
    after = {"name": name, "type": type.value, "uai": uai}
    changes = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
    if not changes:
        return {}
    try:
        with session.begin_nested():
            organization.name, organization.type, organization.uai = name, type, uai
            session.flush()
    except IntegrityError:  # a concurrent change took the UAI or the name meanwhile
        session.refresh(organization)
        raise AlreadyExists(
            "an organization with this UAI or name already exists",
            code="duplicate_uai" if uai else "duplicate_name",
        ) from None
    return changes


def organizations_of(session: Session, user: User) -> list[tuple[Organization, MembershipRole]]:
    rows = session.execute(
        select(Organization, Membership.role)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user.id, Organization.archived_at.is_(None))
        .order_by(Organization.name)
    )
    return [(organization, role) for organization, role in rows]


def set_gar_organizations(session: Session, organization_ids: set[int]) -> None:
    """Mark exactly these organizations as served by the GAR (their students arrive from an
    ENT's Médiacentre: the panel shows no direct link, a campaign's page points students to
    their ENT). Called by the SAML connector when its GAR identity providers change."""
    for organization in session.scalars(
        select(Organization).where(
            (Organization.uses_gar.is_(True)) | (Organization.id.in_(organization_ids or {0}))
        )
    ):
        organization.uses_gar = organization.id in organization_ids
    session.flush()


# Where a connector signs an organization's students in (the ENT through the GAR): connectors
# register a finder; the journey's pages ask for it.
SignInEntry = Callable[[Session, Organization, str], "str | None"]
_sign_in_entries: list[SignInEntry] = []


def add_sign_in_entry(finder: SignInEntry) -> None:
    if finder not in _sign_in_entries:
        _sign_in_entries.append(finder)


def sign_in_entry(session: Session, organization: Organization, next_path: str) -> str | None:
    """The URL that signs a student of `organization` in through its connector, then goes on
    to `next_path`; None when no connector serves it."""
    for finder in _sign_in_entries:
        found = finder(session, organization, next_path)
        if found:
            return found
    return None
