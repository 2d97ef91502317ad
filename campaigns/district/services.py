"""District administration: instance administrators, organizations run from `/admin` and the
command line, and the audit log of everything they do.

Functions take the session first, flush and never commit. Every change writes its audit entry
(`record`) in the same transaction, so an action and its entry are stored together or not at
all. Entries copy who acted and the object's name, so they outlive both; they never hold a
secret or a token (an invitation's e-mail and id, never its link).

Rules:
- only accounts whose e-mail address is proven become instance administrators, and only on the
  command line (`parcours admins grant`); the last one cannot be revoked;
- an organization created here, and every admin added to one, follows `parcours org create`:
  the organization starts empty and its admins join by accepting an invitation mailed to them
  (`team.add_member`), never by someone else's form.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.accounts import users
from campaigns.accounts.sessions import Person
from campaigns.orga import team
from campaigns.shared import organizations, pagination
from campaigns.shared.errors import InvalidInput, ServiceError
from campaigns.shared.models import (
    AuditEntry,
    InstanceAdmin,
    Membership,
    MembershipRole,
    Organization,
    OrganizationType,
    User,
)
from config.db import utcnow

ORGANIZATIONS_PER_PAGE = 25
ENTRIES_PER_PAGE = 50
SEARCH_MAX = 100
LABEL_MAX = 600


class Action(enum.StrEnum):
    """What an audit entry records (stored as its value: never rename one)."""

    ADMIN_GRANT = "instance_admin.grant"
    ADMIN_REVOKE = "instance_admin.revoke"
    ORGANIZATION_CREATE = "organization.create"
    ORGANIZATION_UPDATE = "organization.update"
    ORGANIZATION_ARCHIVE = "organization.archive"
    ORGANIZATION_UNARCHIVE = "organization.unarchive"
    ORGANIZATION_INVITE_ADMIN = "organization.invite_admin"


class ObjectType(enum.StrEnum):
    USER = "user"
    ORGANIZATION = "organization"


class LastInstanceAdmin(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            "the last instance administrator cannot be revoked: grant someone else first",
            code="last_instance_admin",
        )


@dataclass(frozen=True)
class Actor:
    """Who does an action: a signed-in instance administrator, or the command line."""

    user: User | None
    label: str
    request_id: str | None = None

    @classmethod
    def of(cls, user: User, *, request_id: str | None = None) -> Actor:
        return cls(user, f"{user.full_name} <{user.email or user.username or user.id}>", request_id)


COMMAND_LINE = Actor(None, "command line")


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    object_type: str,
    object_id: int | None,
    object_label: str,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry to the audit log (in the caller's transaction). `action` and
    `object_type` are an `Action` and an `ObjectType`, or the values other packages describe
    to `/admin` (`views.describe_audit`)."""
    entry = AuditEntry(
        created_at=utcnow(),
        actor_user_id=actor.user.id if actor.user is not None else None,
        actor_label=actor.label[:LABEL_MAX],
        action=str(action),
        object_type=str(object_type),
        object_id=str(object_id) if object_id is not None else None,
        object_label=object_label[:LABEL_MAX],
        request_id=actor.request_id,
        details=details or {},
    )
    session.add(entry)
    session.flush()
    return entry


def _organization_entry(
    session: Session,
    actor: Actor,
    action: Action,
    organization: Organization,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    return record(
        session,
        actor,
        action,
        object_type=ObjectType.ORGANIZATION,
        object_id=organization.id,
        object_label=organization.name + (f" ({organization.uai})" if organization.uai else ""),
        details=details,
    )


# -- instance administrators ----------------------------------------------------------------------


def is_instance_admin(user: User | Person | None) -> bool:
    """Whether `user` reaches `/admin`: an instance administrator whose address is (still)
    proven. (A `Person`, the signed-in user as a page's own statement read them, carries both.)"""
    if user is None or not user.email_proven:
        return False
    # Loaded with the user (`User.is_instance_admin`); `grant` and `revoke` expire it.
    return bool(user.is_instance_admin)  # type: ignore[union-attr]


@dataclass(frozen=True)
class AdminRow:
    user_id: int
    email: str | None
    name: str
    granted_at: dt.datetime


def instance_admins(session: Session) -> list[AdminRow]:
    rows = session.execute(
        select(User.id, User.email, User.first_name, User.last_name, InstanceAdmin.granted_at)
        .join(InstanceAdmin, InstanceAdmin.user_id == User.id)
        .order_by(InstanceAdmin.granted_at, InstanceAdmin.id)
    )
    return [
        AdminRow(user_id, email, f"{first} {last}".strip(), granted_at)
        for user_id, email, first, last, granted_at in rows
    ]


def _account(session: Session, email: str) -> User:
    address = users.normalize_email(email)
    user = session.scalars(select(User).where(User.email == address)).one_or_none()
    if user is None:
        raise InvalidInput(f"no account with the e-mail address {address}", code="unknown")
    return user


def grant(session: Session, email: str, *, actor: Actor) -> tuple[User, bool]:
    """Make the account of `email` an instance administrator; the account and whether it was
    granted now (False: it already was)."""
    user = _account(session, email)
    if not user.email_proven:
        raise InvalidInput(
            f"the e-mail address {user.email} is not confirmed yet: its owner confirms it with "
            'the link mailed to it ("Mon compte" sends a new one)',
            code="unproven",
        )
    if session.scalar(select(InstanceAdmin.id).where(InstanceAdmin.user_id == user.id)):
        return user, False
    try:
        with session.begin_nested():
            session.add(
                InstanceAdmin(
                    user_id=user.id,
                    granted_at=utcnow(),
                    granted_by_id=actor.user.id if actor.user else None,
                )
            )
    except IntegrityError:  # granted meanwhile by someone else
        return user, False
    session.expire(user, ["is_instance_admin"])
    record(
        session,
        actor,
        Action.ADMIN_GRANT,
        object_type=ObjectType.USER,
        object_id=user.id,
        object_label=f"{user.full_name} <{user.email}>",
    )
    return user, True


def revoke(session: Session, email: str, *, actor: Actor) -> User:
    """Take the instance administrator role back from the account of `email`; never from the
    last one. The administrators are locked first (`SELECT … FOR UPDATE` on PostgreSQL), so two
    revocations at once cannot leave nobody."""
    user = _account(session, email)
    admins = list(
        session.scalars(select(InstanceAdmin.user_id).order_by(InstanceAdmin.id).with_for_update())
    )
    if user.id not in admins:
        raise InvalidInput(f"{user.email} is not an instance administrator", code="not_admin")
    if admins == [user.id]:
        raise LastInstanceAdmin()
    session.execute(delete(InstanceAdmin).where(InstanceAdmin.user_id == user.id))
    session.expire(user, ["is_instance_admin"])
    record(
        session,
        actor,
        Action.ADMIN_REVOKE,
        object_type=ObjectType.USER,
        object_id=user.id,
        object_label=f"{user.full_name} <{user.email}>",
    )
    return user


# -- organizations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrganizationRow:
    id: int
    name: str
    type: OrganizationType
    uai: str | None
    created_at: dt.datetime
    archived_at: dt.datetime | None
    admins: int


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_organizations(
    session: Session,
    *,
    search: str = "",
    archived: bool | None = False,
    page: int = 1,
    per_page: int = ORGANIZATIONS_PER_PAGE,
) -> pagination.Page[OrganizationRow]:
    """One page of organizations by name (every word of `search` in the name or the UAI);
    `archived`: False the active ones, True the archived ones, None all."""
    conditions: list[ColumnElement[bool]] = []
    if archived is not None:
        conditions.append(
            Organization.archived_at.is_not(None)
            if archived
            else Organization.archived_at.is_(None)
        )
    for word in " ".join(search.split())[:SEARCH_MAX].lower().split()[:5]:
        pattern = _like(word)
        conditions.append(
            or_(
                func.lower(Organization.name).like(pattern, escape="\\"),
                func.lower(Organization.uai).like(pattern, escape="\\"),
            )
        )
    total = session.scalar(select(func.count()).select_from(Organization).where(*conditions))
    listing = pagination.clamp(page, total=int(total or 0), per_page=per_page)
    admins = (
        select(func.count())
        .select_from(Membership)
        .where(
            Membership.organization_id == Organization.id,
            Membership.role == MembershipRole.ADMIN,
        )
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Organization.id,
            Organization.name,
            Organization.type,
            Organization.uai,
            Organization.created_at,
            Organization.archived_at,
            admins,
        )
        .where(*conditions)
        .order_by(func.lower(Organization.name), Organization.id)
        .limit(listing.per_page)
        .offset(listing.offset)
    )
    return listing.with_items(OrganizationRow(*row) for row in rows)


@dataclass(frozen=True)
class Founded:
    organization: Organization
    invitation: team.Added


def create_organization(
    session: Session,
    *,
    name: str,
    type: OrganizationType,
    uai: str | None,
    admin_email: str,
    public_url: str,
    actor: Actor,
) -> Founded:
    """`parcours org create` and the form of `/admin`: an organization with nobody in it, and an
    admin invitation mailed to `admin_email`."""
    address = users.normalize_email(admin_email)  # before anything is created
    organization = organizations.create_organization(session, name=name, type=type, uai=uai)
    invited = invite_admin(
        session, organization, email=address, public_url=public_url, actor=actor, audit=False
    )
    invitation = invited.invitation
    _organization_entry(
        session,
        actor,
        Action.ORGANIZATION_CREATE,
        organization,
        {
            "name": organization.name,
            "type": organization.type.value,
            "uai": organization.uai,
            "admin_email": address,
            "invitation_id": invitation.id if invitation else None,
        },
    )
    return Founded(organization, invited)


def invite_admin(
    session: Session,
    organization: Organization,
    *,
    email: str,
    public_url: str,
    actor: Actor,
    audit: bool = True,
) -> team.Added:
    """Mail an ADMIN invitation to `email` (or renew a pending one), as `parcours org
    invite-admin` does; someone who already is a member is left as they are (ALREADY_MEMBER)."""
    address = users.normalize_email(email)
    invited = team.add_member(
        session,
        organization,
        email=address,
        role=MembershipRole.ADMIN,
        invited_by=actor.user,
        public_url=public_url,
    )
    if audit and invited.invitation is not None:
        _organization_entry(
            session,
            actor,
            Action.ORGANIZATION_INVITE_ADMIN,
            organization,
            {
                "email": address,
                "outcome": invited.outcome.value,
                "invitation_id": invited.invitation.id,
            },
        )
    return invited


def update_organization(
    session: Session,
    organization: Organization,
    *,
    name: str,
    type: OrganizationType,
    uai: str | None,
    actor: Actor,
) -> dict[str, list[str | None]]:
    """Change name, type and UAI (`organizations.update_organization`); what changed."""
    changes = organizations.update_organization(
        session, organization, name=name, type=type, uai=uai
    )
    if changes:
        _organization_entry(
            session, actor, Action.ORGANIZATION_UPDATE, organization, {"changes": changes}
        )
    return changes


def set_archived(
    session: Session, organization: Organization, archived: bool, *, actor: Actor
) -> bool:
    """Archive (its members no longer reach it, its invitations stop working) or bring back an
    organization; whether anything changed."""
    if (organization.archived_at is not None) == archived:
        return False
    organization.archived_at = utcnow() if archived else None
    session.flush()
    action = Action.ORGANIZATION_ARCHIVE if archived else Action.ORGANIZATION_UNARCHIVE
    _organization_entry(session, actor, action, organization)
    return True


@dataclass(frozen=True)
class OrganizationAdmin:
    user_id: int
    name: str
    email: str | None
    since: dt.datetime


def organization_admins(session: Session, organization: Organization) -> list[OrganizationAdmin]:
    rows = session.execute(
        select(User.id, User.first_name, User.last_name, User.email, Membership.created_at)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.organization_id == organization.id,
            Membership.role == MembershipRole.ADMIN,
        )
        .order_by(func.lower(User.last_name), func.lower(User.first_name), User.id)
    )
    return [
        OrganizationAdmin(user_id, f"{first} {last}".strip(), email, since)
        for user_id, first, last, email, since in rows
    ]


def pending_admin_invitations(session: Session, organization: Organization) -> list[Any]:
    return [
        invitation
        for invitation in team.pending_invitations(session, organization)
        if invitation.role is MembershipRole.ADMIN
    ]


# -- the audit log --------------------------------------------------------------------------------


def audit_entries(
    session: Session,
    *,
    action: str = "",
    actor: str = "",
    object_type: str = "",
    object_id: str = "",
    page: int = 1,
    per_page: int = ENTRIES_PER_PAGE,
) -> pagination.Page[AuditEntry]:
    """One page of the audit log, newest first: of one `action`, by actors whose label holds
    `actor` (case aside), on objects of `object_type` (and `object_id`)."""
    conditions: list[ColumnElement[bool]] = []
    if action:
        conditions.append(AuditEntry.action == action)
    term = " ".join(actor.split())[:SEARCH_MAX].lower()
    if term:
        conditions.append(func.lower(AuditEntry.actor_label).like(_like(term), escape="\\"))
    if object_type:
        conditions.append(AuditEntry.object_type == object_type)
    if object_id:
        conditions.append(AuditEntry.object_id == object_id)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions))
    listing = pagination.clamp(page, total=int(total or 0), per_page=per_page)
    rows: Sequence[AuditEntry] = session.scalars(
        select(AuditEntry)
        .where(*conditions)
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .limit(listing.per_page)
        .offset(listing.offset)
    ).all()
    return listing.with_items(rows)
