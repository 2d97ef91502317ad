"""Names and Role Provisioning: on the campaign page an instructor opened from the LMS, the
course's learners who have not started the campaign yet.

The instructor's launch remembers, in their session, which course placement each campaign was
opened from; the campaign page then reads the course's member list from the platform (one
authorized call per page of members, tokens shared with grade passback). When the platform
does not answer, the page says so and shows the rest.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import render_template
from flask import session as flask_session
from markupsafe import Markup
from sqlalchemy import select

from campaigns import connectors
from config.db import get_session
from lti_tool import ags
from lti_tool.models import GradeStatus, LtiDeployment, LtiLearner, LtiPlatform, LtiResourceLink

log = logging.getLogger(__name__)

NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
MEMBERSHIPS_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
COURSES_KEY = "lti_courses"  # {campaign id: resource link id}, in the instructor's session
COURSES_KEPT = 10


def remember_course(link: LtiResourceLink) -> None:
    """The instructor opened this placement's campaign: its page will show the course."""
    if link.campaign_id is None:
        return
    courses = dict(flask_session.get(COURSES_KEY) or {})
    courses.pop(str(link.campaign_id), None)
    courses[str(link.campaign_id)] = link.id
    flask_session[COURSES_KEY] = dict(list(courses.items())[-COURSES_KEPT:])


def members(platform: LtiPlatform, url: str) -> list[dict[str, Any]]:
    """Every member of the course, page after page."""
    found: list[dict[str, Any]] = []
    with ags.Client(get_session(), platform, NRPS_SCOPE) as client:
        for page in client.pages(url, "members", accept=MEMBERSHIPS_TYPE):
            listed = page.get("members") if isinstance(page, dict) else None
            if not isinstance(listed, list):
                raise ags.PlatformError("members: no member list in the answer", retry=False)
            found += [m for m in listed if isinstance(m, dict)]
    return found


def _is_learner(member: dict[str, Any]) -> bool:
    roles = member.get("roles")
    if not isinstance(roles, list) or member.get("status", "Active") != "Active":
        return False
    return any(isinstance(r, str) and r.rsplit("#", 1)[-1] == "Learner" for r in roles)


def not_started(link: LtiResourceLink, listed: list[dict[str, Any]]) -> list[str]:
    """Names of the course's learners with no participation in the link's campaign."""
    session = get_session()
    started_users = set(
        session.scalars(
            select(connectors.Participation.user_id).where(
                connectors.Participation.campaign_id == link.campaign_id
            )
        )
    )
    user_of_sub = dict(
        session.execute(
            select(LtiLearner.sub, LtiLearner.user_id).where(LtiLearner.resource_link_id == link.id)
        ).all()
    )
    names = []
    for member in listed:
        if not _is_learner(member):
            continue
        user_id = user_of_sub.get(str(member.get("user_id")))
        if user_id is not None and user_id in started_users:
            continue
        name = member.get("name") or " ".join(
            str(member.get(k) or "") for k in ("given_name", "family_name")
        )
        names.append(" ".join(str(name).split()) or str(member.get("user_id")))
    return sorted(names, key=str.casefold)


def failed_grades(campaign: connectors.Campaign) -> list[tuple[LtiLearner, str]]:
    """Learners of the campaign's LMS placements whose grade could not be delivered."""
    rows = (
        get_session()
        .execute(
            select(LtiLearner, connectors.User)
            .join(LtiResourceLink, LtiResourceLink.id == LtiLearner.resource_link_id)
            .join(connectors.User, connectors.User.id == LtiLearner.user_id)
            .where(
                LtiResourceLink.campaign_id == campaign.id,
                LtiLearner.grade_status == GradeStatus.FAILED,
            )
            .order_by(connectors.User.last_name, connectors.User.first_name)
        )
        .all()
    )
    return [(learner, user.full_name or str(user.id)) for learner, user in rows]


def campaign_section(campaign: connectors.Campaign) -> Markup | None:
    """The campaign page's LMS section: grades the gradebook did not take ("renvoyer"), and,
    when the instructor came from the LMS, the course's learners who have not started."""
    failed = failed_grades(campaign)
    roster = _roster(campaign)
    if not failed and roster is None:
        return None
    html = render_template(
        "lti/campaign_section.html", campaign=campaign, failed=failed, roster=roster
    )
    return Markup(html)  # noqa: S704 - a template of ours, autoescaped


def _roster(campaign: connectors.Campaign) -> str | None:
    link_id = (flask_session.get(COURSES_KEY) or {}).get(str(campaign.id))
    if link_id is None:
        return None
    session = get_session()
    link = session.get(LtiResourceLink, link_id)
    if link is None or link.campaign_id != campaign.id or not link.memberships_url:
        return None
    deployment = session.get(LtiDeployment, link.deployment_id)
    platform = session.get(LtiPlatform, deployment.platform_id) if deployment else None
    if platform is None or not platform.is_active:
        return None
    try:
        names: list[str] | None = not_started(link, members(platform, link.memberships_url))
    except ags.PlatformError as error:
        log.warning("LTI roster of link %s unavailable: %s", link.id, error)
        names = None
    return render_template(
        "lti/roster.html", names=names, course=link.context_title or link.title or ""
    )
