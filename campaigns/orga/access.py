"""The teacher panel ("Orga"): the organization a member works in, its navigation and its rules.

Every Orga view is `@member_required`: signed in, member of the organization chosen in the
session (their first one otherwise), terms of use accepted. Objects are always looked up within
that organization: another organization's id gets a 404, never a 403 that would confirm it
exists. Only a campaign's owner or an admin changes a campaign (`can_manage`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from campaigns.accounts.auth import current_user, safe_next
from campaigns.shared.models import Campaign, MembershipRole, Organization, OrganizationType, User
from campaigns.shared.organizations import organizations_of
from config.db import get_session, utcnow
from config.numbers import parse_int
from config.security import frameable

blueprint = Blueprint("orga", __name__, template_folder="templates")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Workspace:
    """The signed-in member and the organization they are working in."""

    user: User
    organization: Organization
    role: MembershipRole
    organizations: list[tuple[Organization, MembershipRole]]  # all of theirs, for the switcher

    @property
    def is_admin(self) -> bool:
        return self.role is MembershipRole.ADMIN

    @property
    def is_school(self) -> bool:
        return self.organization.type is OrganizationType.SCO


def workspace() -> Workspace | None:
    """The current member's workspace (None for visitors and for users of no organization)."""
    if "orga_workspace" not in g:
        user = current_user()
        found = None
        if user is not None:
            organizations = organizations_of(get_session(), user)
            chosen = session.get("organization_id")
            match = [(o, r) for o, r in organizations if o.id == chosen] or organizations[:1]
            if match:
                organization, role = match[0]
                found = Workspace(user, organization, role, organizations)
        g.orga_workspace = found
    current: Workspace | None = g.orga_workspace
    return current


def current_workspace() -> Workspace:
    """The workspace of a `@member_required` view."""
    found = workspace()
    if found is None:
        abort(403)
    return found


def member_required(view: F) -> F:
    """Signed in, member of an organization with a proven address, terms of use accepted;
    framable in an LMS."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None:
            return redirect(url_for("campaigns.sign_in", next=request.full_path.rstrip("?")))
        if workspace() is None:
            return render_template("orga/not_a_member.html"), 403
        if user.email is not None and user.email_verified_at is None:
            # A role held by an address nobody proved (a member from before addresses were
            # proven, perhaps someone who signed up with another person's address) waits for the
            # owner of the address to confirm it.
            return render_template("orga/unproven.html", user=user), 403
        if user.cgu_accepted_at is None:
            return redirect(url_for("orga.terms", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return frameable(wrapper)  # type: ignore[return-value]


def admin_required(view: F) -> F:
    """`member_required`, and an admin of the current organization."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_workspace().is_admin:
            return render_template(
                "orga/forbidden.html",
                message=_("Seuls les administrateurs de l’organisation peuvent faire cela."),
            ), 403
        return view(*args, **kwargs)

    return member_required(wrapper)  # type: ignore[return-value]


def organization_campaign(campaign_id: int) -> Campaign:
    """A campaign of the current organization, or 404."""
    campaign = (
        get_session()
        .scalars(
            select(Campaign).where(
                Campaign.id == campaign_id,
                Campaign.organization_id == current_workspace().organization.id,
            )
        )
        .one_or_none()
    )
    if campaign is None:
        abort(404)
    return campaign


def can_manage(campaign: Campaign) -> bool:
    """Only the campaign's owner or an admin edits or archives it."""
    found = current_workspace()
    return found.is_admin or campaign.owner_id == found.user.id


def manage_required(campaign: Campaign) -> None:
    if not can_manage(campaign):
        abort(403)


# -- views ----------------------------------------------------------------------------------------


@blueprint.get("/orga", endpoint="home")
@member_required
def home() -> Response:
    return redirect(url_for("orga_campaigns.index"))


@blueprint.post("/orga/organisation", endpoint="switch")
@member_required
def switch() -> Response:
    """Work in another of the member's organizations."""
    wanted = parse_int(request.form.get("organization_id"), None)
    ids = {o.id for o, _role in current_workspace().organizations}
    if wanted not in ids:
        abort(404)
    session["organization_id"] = wanted
    g.pop("orga_workspace", None)
    return redirect(url_for("orga.home"))


@blueprint.route("/orga/cgu", methods=["GET", "POST"], endpoint="terms")
@frameable
def terms() -> str | Response | tuple[str, int]:
    """The terms of use, accepted once before the first visit of the panel."""
    user = current_user()
    if user is None:
        return redirect(url_for("campaigns.sign_in", next=request.full_path.rstrip("?")))
    next_url = safe_next(request.values.get("next"), url_for("orga.home"))
    if request.method == "GET":
        return render_template("orga/terms.html", next_url=next_url)
    if request.form.get("accept") != "1":
        return render_template(
            "orga/terms.html",
            next_url=next_url,
            error=_("Cochez la case pour accepter les conditions d’utilisation."),
        ), 400
    if user.cgu_accepted_at is None:
        user.cgu_accepted_at = utcnow()
    get_session().commit()
    return redirect(next_url)


@blueprint.get("/orga/documentation", endpoint="documentation")
@member_required
def documentation() -> str:
    return render_template("orga/documentation.html", section="documentation")


@blueprint.app_context_processor
def _inject_workspace() -> dict[str, object]:
    return {"orga_workspace": workspace, "can_manage": can_manage}
