"""The test LMS in Chromium: a teacher deep-links a campaign and a student launches it inside the
LMS's iframe, with the browser keeping our state cookie or dropping it (third-party cookies
blocked) — then the platform's storage, reached by postMessage, stands in for it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from campaigns.shared.models import Participation
from lti_tool.models import LtiEvent, LtiEventKind

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def activity(lms_site, browser) -> str:
    """Claire Durand adds the campaign to her course by deep linking, in the LMS's iframe."""
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(lms_site.url + "/dev/lms")
    page.get_by_role("button", name="Ajouter une activité Parcours").click()
    tool = page.frame_locator("iframe[name=outil]")
    tool.get_by_role("button", name="Choisir ce parcours", exact=True).click()
    tool.get_by_role("heading", name="Activité ajoutée au cours").wait_for()
    page.goto(lms_site.url + "/dev/lms")
    launch = page.get_by_role("button", name="Lancer : Léa Martin")
    launch.wait_for()
    context.close()
    return "Lancer : Léa Martin"


def _dropping_our_cookies(page, forget_storage=False):
    """What a browser blocking third-party cookies does: the tool's login state cookie does not
    come back with the launch. Done when the LMS's auth endpoint is reached, after the login."""

    def on_auth(route):
        page.context.clear_cookies()
        if forget_storage:  # another browser's launch: this LMS page never stored its state
            page.evaluate("() => window.sessionStorage.clear()")
        route.continue_()

    page.route(AUTH, on_auth)


def _participations(lms_site) -> int:
    with lms_site.database.session() as session:
        return session.scalar(select(func.count()).select_from(Participation)) or 0


def _launch(page, lms_site, button):
    page.goto(lms_site.url + "/dev/lms")
    page.get_by_role("button", name=button).click()
    return page.frame_locator("iframe[name=outil]")


AUTH = re.compile(r"/dev/lms/auth\?")
IN_THE_TEST = "() => window.frames['outil'].location.pathname.startsWith('/campagnes/')"


def test_a_student_launches_into_the_test_in_the_lms_iframe(lms_site, activity, page):
    _launch(page, lms_site, activity)
    page.wait_for_function(IN_THE_TEST)
    assert _participations(lms_site) == 1


def test_without_its_state_cookie_the_launch_is_checked_in_the_platform_storage(
    lms_site, activity, page
):
    _dropping_our_cookies(page)
    before = _participations(lms_site)
    checked = []
    page.on(
        "request",
        lambda r: checked.append(r.post_data or "") if r.url.endswith("/lti/launch") else None,
    )
    _launch(page, lms_site, activity)
    page.wait_for_function(IN_THE_TEST)
    assert [body for body in checked if "lti_storage_checked" in body] == [
        body
        for body in checked
        if "lti_storage_checked=1" in body  # read back from the LMS
    ]
    assert len(checked) == 2  # the launch, then the launch checked
    assert _participations(lms_site) == before  # the same participation, resumed


def test_a_launch_whose_state_is_not_in_the_platform_storage_is_refused(lms_site, activity, page):
    _dropping_our_cookies(page, forget_storage=True)
    tool = _launch(page, lms_site, activity)
    tool.get_by_text("demandée par ce navigateur").wait_for()
    assert "Référence" in tool.locator("main").inner_text()
    with lms_site.database.session() as session:
        event = session.scalars(select(LtiEvent).order_by(LtiEvent.id.desc())).first()
    assert event.kind == LtiEventKind.REFUSED and event.summary.startswith("storage_missing")
