"""The test LMS in Chromium: a teacher deep-links a campaign and a student launches it inside the
LMS's iframe, with the browser keeping our state cookie or dropping it (third-party cookies
blocked) — then the platform's storage, reached by postMessage, stands in for it."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from campaigns.orga import campaign_admin
from campaigns.shared.content import import_pack
from campaigns.shared.models import CampaignType, OrganizationType, Participation, TargetProfile
from config.app import create_app
from config.db import Database
from config.migrations import upgrade
from config.settings import Settings
from engine.content import BUNDLED_PACK
from lti_tool import devlms
from lti_tool.models import LtiEvent, LtiEventKind
from tests.conftest import TEST_SECRET
from tests.factories import organization_with_admin

pytestmark = pytest.mark.browser


@dataclass
class LmsSite:
    url: str
    database: Database
    campaign_name: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def lms_site(scratch_databases, tmp_path_factory) -> Iterator[LmsSite]:
    port = _free_port()  # PUBLIC_URL must be the real address: tool and LMS call each other
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=scratch_databases.new("browser_lti"), secret_key=TEST_SECRET, public_url=url
    )
    database = Database(settings)
    upgrade(database)
    with database.session() as session, session.begin():
        import_pack(session, BUNDLED_PACK)
        created = organization_with_admin(
            session, name="Lycée du Cadre", type=OrganizationType.SCO, uai="0750998Y",
            admin_email="prof@cadre.example",
        )  # fmt: skip
        profile = session.query(TargetProfile).filter_by(content_key="tp-competence-4.3").one()
        campaign_admin.create_campaign(
            session, organization=created.organization, creator=created.admin, name="Dans le LMS",
            type=CampaignType.ASSESSMENT, target_profile=profile, title="Santé et numérique",
        )  # fmt: skip
        devlms.register_demo_platform(session, created.organization, url)
    app = create_app(settings, database=database)
    app.instance_path = str(tmp_path_factory.mktemp("dev-lms"))  # the test LMS's state
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LmsSite(url, database, "Dans le LMS")
    finally:
        server.shutdown()
        database.dispose()


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
