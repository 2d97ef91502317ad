"""An organization's team: members, their roles, and invitations by e-mail.

Functions take the session first, flush and never commit. Rules:
- nobody is attached to an organization by someone else's form: adding an address, whether or
  not it has an account, sends an invitation by e-mail, valid `INVITATION_VALIDITY`, holding a
  random token of which only the SHA-256 is stored; inviting the same address again renews it
  (new token, new expiry: the old link stops working). The e-mail is queued in the transaction
  of the change (`config.mail`): it leaves if and only if the change commits;
- an invitation is accepted by the signed-in account of the invited address (or by a new
  account created with it through the link). The link was mailed to that address, so using it
  proves the address (`links.mark_proven`): an unproven address never receives a role;
- an organization never loses its last admin: demoting or removing an admin first locks the
  organization's admin memberships (`SELECT … FOR UPDATE` on PostgreSQL; SQLite has one writer
  at a time), so two admins demoting each other at once cannot both succeed;
- a person is a member of an organization once (database constraint), so accepting an
  invitation twice joins once.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import format_datetime
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.accounts import links, sessions, users
from campaigns.shared import pagination
from campaigns.shared.errors import ServiceError
from campaigns.shared.models import Invitation, Membership, MembershipRole, Organization, User
from config.db import utcnow
from config.jobs import withdraw
from config.mail import queue_mail

INVITATION_VALIDITY = dt.timedelta(days=7)
MEMBERS_PER_PAGE = 50


class TeamError(ServiceError):
    """A team change the rules refuse; `code` names the rule for the views' messages."""


class LastAdmin(TeamError):
    def __init__(self) -> None:
        super().__init__("an organization keeps at least one admin", code="last_admin")


class InvitationUnusable(TeamError):
    """The invitation exists but is expired, cancelled or already used (code says which)."""


class Outcome(enum.StrEnum):
    ALREADY_MEMBER = "already_member"
    INVITED = "invited"  # a new invitation was e-mailed
    RENEWED = "renewed"  # a pending invitation got a new token and expiry, e-mailed again


@dataclass(frozen=True)
class Added:
    outcome: Outcome
    user: User | None = None
    invitation: Invitation | None = None


@dataclass(frozen=True)
class MemberRow:
    membership_id: int
    user_id: int
    first_name: str
    last_name: str
    email: str | None
    role: MembershipRole


# -- tokens ---------------------------------------------------------------------------------------
# Random tokens stored hashed, like every mailed link (`sessions.new_token`, `sessions.token_hash`).


def invitation_link(public_url: str, token: str) -> str:
    return links.link(public_url, f"/invitation/{token}")


# -- reading --------------------------------------------------------------------------------------


def members(
    session: Session, organization: Organization, *, page: int = 1, per_page: int = MEMBERS_PER_PAGE
) -> pagination.Page[MemberRow]:
    """One page of the organization's members sorted by last name."""
    total = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.organization_id == organization.id)
    )
    listing = pagination.clamp(page, total=int(total or 0), per_page=per_page)
    rows = session.execute(
        select(Membership.id, User.id, User.first_name, User.last_name, User.email, Membership.role)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization.id)
        .order_by(func.lower(User.last_name), func.lower(User.first_name), Membership.id)
        .limit(listing.per_page)
        .offset(listing.offset)
    )
    return listing.with_items(MemberRow(*row) for row in rows)


def pending_invitations(session: Session, organization: Organization) -> Sequence[Invitation]:
    """Invitations neither accepted nor cancelled (expired ones included: they can be resent)."""
    return session.scalars(
        select(Invitation)
        .where(
            Invitation.organization_id == organization.id,
            Invitation.accepted_at.is_(None),
            Invitation.cancelled_at.is_(None),
        )
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    ).all()


def membership_in(
    session: Session, organization: Organization, membership_id: int
) -> Membership | None:
    return session.scalars(
        select(Membership).where(
            Membership.id == membership_id, Membership.organization_id == organization.id
        )
    ).one_or_none()


def pending_invitation_in(
    session: Session, organization: Organization, invitation_id: int
) -> Invitation | None:
    return session.scalars(
        select(Invitation).where(
            Invitation.id == invitation_id,
            Invitation.organization_id == organization.id,
            Invitation.accepted_at.is_(None),
            Invitation.cancelled_at.is_(None),
        )
    ).one_or_none()


def invitation_by_token(session: Session, token: str, *, lock: bool = False) -> Invitation | None:
    if not token or len(token) > 128:
        return None
    query = select(Invitation).where(Invitation.token_hash == sessions.token_hash(token))
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def unusable_reason(invitation: Invitation, now: dt.datetime | None = None) -> str | None:
    """Why this invitation cannot be accepted ("accepted", "cancelled", "expired"), or None."""
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.cancelled_at is not None:
        return "cancelled"
    if invitation.expires_at <= (now or utcnow()):
        return "expired"
    return None


# -- adding ---------------------------------------------------------------------------------------


def add_member(
    session: Session,
    organization: Organization,
    *,
    email: str,
    role: MembershipRole,
    invited_by: User | None,
    public_url: str,
) -> Added:
    """Invite the owner of `email` to join with `role` (unless they already are a member): they
    join only by opening the link mailed to them, signed in with that address's account."""
    address = users.normalize_email(email)
    user = session.scalars(select(User).where(User.email == address)).one_or_none()
    if user is not None and session.scalar(
        select(Membership.id).where(
            Membership.organization_id == organization.id, Membership.user_id == user.id
        )
    ):
        return Added(Outcome.ALREADY_MEMBER, user=user)
    return _invite(session, organization, address, role, invited_by, public_url)


def _join(session: Session, organization: Organization, user: User, role: MembershipRole) -> bool:
    """Add the membership; False when they already are a member (even one added meanwhile)."""
    exists = session.scalar(
        select(Membership.id).where(
            Membership.organization_id == organization.id, Membership.user_id == user.id
        )
    )
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Membership(organization_id=organization.id, user_id=user.id, role=role))
    except IntegrityError:  # a concurrent request made them a member first
        return False
    return True


def ensure_member(session: Session, organization: Organization, user: User) -> MembershipRole:
    """Make `user` a MEMBER of `organization` unless they belong to it already, and return their
    role: an admin stays admin, and nobody becomes one this way. For the connectors, whose LMS
    or identity provider vouches for a teacher's place in the school (no invitation then)."""
    if organization.archived_at is not None:
        raise ServiceError("the organization is archived", code="archived")
    users.require_proven(user)
    _join(session, organization, user, MembershipRole.MEMBER)
    role = session.scalar(
        select(Membership.role).where(
            Membership.organization_id == organization.id, Membership.user_id == user.id
        )
    )
    assert role is not None  # noqa: S101 - just joined, or was a member already
    return role


def _invite(
    session: Session,
    organization: Organization,
    address: str,
    role: MembershipRole,
    invited_by: User | None,
    public_url: str,
) -> Added:
    token, now = sessions.new_token(), utcnow()
    for _attempt in range(3):
        pending = session.scalars(
            select(Invitation)
            .where(
                Invitation.organization_id == organization.id,
                Invitation.email == address,
                Invitation.accepted_at.is_(None),
                Invitation.cancelled_at.is_(None),
            )
            .with_for_update()
        ).one_or_none()
        if pending is not None:
            pending.token_hash = sessions.token_hash(token)  # the previous link stops working
            pending.role = role
            pending.invited_by_id = invited_by.id if invited_by else None
            pending.created_at = now
            pending.expires_at = now + INVITATION_VALIDITY
            session.flush()
            invitation, outcome = pending, Outcome.RENEWED
            break
        try:
            with session.begin_nested():
                invitation = Invitation(
                    organization_id=organization.id,
                    email=address,
                    role=role,
                    token_hash=sessions.token_hash(token),
                    invited_by_id=invited_by.id if invited_by else None,
                    created_at=now,
                    expires_at=now + INVITATION_VALIDITY,
                )
                session.add(invitation)
            outcome = Outcome.INVITED
            break
        except IntegrityError:
            continue  # a concurrent request invited them first: renew that one
    else:
        raise TeamError(f"could not invite {address!r}: concurrent invitations")
    subject, body = invitation_mail(
        organization, invited_by, invitation, invitation_link(public_url, token)
    )
    # Only the newest link of an invitation waits in the outbox.
    queue_mail(session, to=address, subject=subject, body=body, dedupe_key=_mail_key(invitation))
    return Added(outcome, invitation=invitation)


def _role_name(role: MembershipRole) -> str:
    name: str = _("administrateur") if role is MembershipRole.ADMIN else _("membre")
    return name


def invitation_mail(
    organization: Organization, inviter: User | None, invitation: Invitation, link: str
) -> tuple[str, str]:
    subject = _(
        "Invitation à rejoindre %(organization)s sur Parcours", organization=organization.name
    )
    if inviter is not None:
        invited = _(
            "%(inviter)s vous invite à rejoindre l’organisation « %(organization)s » sur "
            "Parcours, en tant que %(role)s.",
            inviter=inviter.full_name,
            organization=organization.name,
            role=_role_name(invitation.role),
        )
    else:  # an organization created by the instance's administrators
        invited = _(
            "Vous êtes invité à rejoindre l’organisation « %(organization)s » sur Parcours, en "
            "tant que %(role)s.",
            organization=organization.name,
            role=_role_name(invitation.role),
        )
    body = links.mail_body(
        invited,
        _(
            "Pour accepter l’invitation, ouvrez ce lien (valable jusqu’au %(date)s) :",
            date=format_datetime(invitation.expires_at, "short"),
        )
        + "\n"
        + link,
        _("Si vous n’attendiez pas cette invitation, ignorez simplement ce message."),
    )
    return subject, body


def _mail_key(invitation: Invitation) -> str:
    """The outbox key of an invitation's e-mail."""
    return f"invitation:{invitation.id}"


def cancel_invitation(session: Session, invitation: Invitation) -> None:
    """The link stops working, and its e-mail is withdrawn if it has not left yet."""
    invitation.cancelled_at = utcnow()
    withdraw(session, _mail_key(invitation))
    session.flush()


# -- accepting ------------------------------------------------------------------------------------


def accept_invitation(session: Session, token: str, user: User) -> tuple[Invitation, bool]:
    """`user` joins the organization of the invitation with its role and uses it up. Returns the
    invitation and whether they joined now (False: they already were a member, role kept)."""
    invitation = invitation_by_token(session, token, lock=True)
    if invitation is None:
        raise ServiceError("unknown invitation", code="unknown")
    reason = unusable_reason(invitation)
    if reason is not None:
        raise InvitationUnusable(f"the invitation is {reason}", code=reason)
    organization = session.get(Organization, invitation.organization_id)
    if organization is None or organization.archived_at is not None:
        raise InvitationUnusable("the organization is archived", code="cancelled")
    if user.email != invitation.email:
        raise InvitationUnusable("the invitation is for another address", code="other_address")
    # The link was mailed to this address: whoever holds it and the account owns both.
    links.mark_proven(session, user, invitation.email)
    users.require_proven(user)
    joined = _join(session, organization, user, invitation.role)
    invitation.accepted_at = utcnow()
    invitation.accepted_by_id = user.id
    session.flush()
    return invitation, joined


# -- roles and leaving ----------------------------------------------------------------------------


def _lock_admins(session: Session, organization: Organization) -> list[int]:
    """Lock the organization's admin memberships until the transaction ends; their ids."""
    return list(
        session.scalars(
            select(Membership.id)
            .where(
                Membership.organization_id == organization.id,
                Membership.role == MembershipRole.ADMIN,
            )
            .order_by(Membership.id)
            .with_for_update()
        )
    )


def _current(session: Session, organization: Organization, membership_id: int) -> Membership:
    """The membership as it is now that the admins are locked (a concurrent change included)."""
    membership = session.scalars(
        select(Membership)
        .where(Membership.id == membership_id, Membership.organization_id == organization.id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if membership is None:
        raise ServiceError("no such member", code="not_found")
    return membership


def is_last_admin(session: Session, organization: Organization, membership: Membership) -> bool:
    """Whether `membership` is the organization's only admin, as things stand (to warn before
    asking; `change_role` and `remove_member` decide again under lock)."""
    if membership.role is not MembershipRole.ADMIN:
        return False
    other_admin = session.scalar(
        select(Membership.id)
        .where(
            Membership.organization_id == organization.id,
            Membership.role == MembershipRole.ADMIN,
            Membership.id != membership.id,
        )
        .limit(1)
    )
    return other_admin is None


def change_role(
    session: Session, organization: Organization, membership_id: int, role: MembershipRole
) -> Membership:
    admins = _lock_admins(session, organization)
    membership = _current(session, organization, membership_id)
    if membership.role is role:
        return membership
    if membership.role is MembershipRole.ADMIN and admins == [membership.id]:
        raise LastAdmin()
    if role is MembershipRole.ADMIN:
        users.require_proven(membership.user)  # no new role for an unproven address
    membership.role = role
    session.flush()
    return membership


def remove_member(session: Session, organization: Organization, membership_id: int) -> None:
    admins = _lock_admins(session, organization)
    membership = _current(session, organization, membership_id)
    if membership.role is MembershipRole.ADMIN and admins == [membership.id]:
        raise LastAdmin()
    session.delete(membership)
    session.flush()
