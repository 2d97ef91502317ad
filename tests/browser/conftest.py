"""A live Parcours on 127.0.0.1 and headless Chromium (Debian's, installed by `make`) driven by
Playwright, as a student would use them."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from bench.common import free_port
from campaigns.orga import campaign_admin
from campaigns.shared.content import import_pack
from campaigns.shared.models import (
    Campaign,
    CampaignType,
    Organization,
    OrganizationType,
    TargetProfile,
)
from config.app import create_app
from config.db import Database
from config.migrations import upgrade
from config.settings import Settings
from engine.content import BUNDLED_PACK
from lti_tool import devlms
from tests.conftest import TEST_SECRET
from tests.factories import organization_with_admin

PUBLIC_URL = "http://127.0.0.1:5000"  # live_site's settings: the address its links and SAML use
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class LiveSite:
    url: str
    database: Database
    assessment_code: str
    collection_code: str


@pytest.fixture(scope="module")
def live_site(scratch_databases) -> Iterator[LiveSite]:
    settings = Settings(
        database_url=scratch_databases.new("browser"),
        secret_key=TEST_SECRET,
        public_url=PUBLIC_URL,
    )
    database = Database(settings)
    upgrade(database)
    with database.session() as session, session.begin():
        import_pack(session, BUNDLED_PACK)
        created = organization_with_admin(
            session,
            name="Collège du Navigateur",
            type=OrganizationType.SCO,
            uai="0750999Z",
            admin_email="prof@navigateur.example",
        )
        profile = session.query(TargetProfile).filter_by(content_key="tp-competence-4.3").one()
        assessment = campaign_admin.create_campaign(
            session, organization=created.organization, creator=created.admin, name="Navigateur",
            type=CampaignType.ASSESSMENT, target_profile=profile, title="Santé et numérique",
        )  # fmt: skip
        collection = campaign_admin.create_campaign(
            session, organization=created.organization, creator=created.admin, name="Profils",
            type=CampaignType.PROFILES_COLLECTION, title="Envoyez votre profil",
        )  # fmt: skip
        codes = assessment.code, collection.code
    server = make_server("127.0.0.1", 0, create_app(settings, database=database), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveSite(f"http://127.0.0.1:{server.server_port}", database, *codes)
    finally:
        server.shutdown()
        database.dispose()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make install` installs Debian's chromium")
        pytest.skip("Chromium is not installed (make install-browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


# -- the design tour (test_design.py) -------------------------------------------------------------

TEACHER_PASSWORD = "Prof-Navigateur-2026"


@dataclass
class BusySchool:
    """live_site's school as a teacher finds it after a few weeks of use."""

    teacher_email: str  # the organization's admin: a password, the terms not accepted yet
    teacher_password: str
    teacher_name: str
    colleague_name: str
    identified_code: str  # a profiles collection asking for a student number
    archived_code: str


@pytest.fixture(scope="module")
def busy_school(live_site) -> BusySchool:
    """More campaigns (one archived, one a colleague owns, one asking for an identifier, one with
    a long name) and students who took the assessment through the services: two sent their
    results, one did not yet, one stopped after three questions."""
    from campaigns.accounts import users
    from tests.orga_helpers import take_test, teacher

    with live_site.database.session() as session, session.begin():
        admin = users.find_user_by_login(session, "prof@navigateur.example")
        assert admin is not None
        users.set_password(session, admin, TEACHER_PASSWORD)
        admin.first_name, admin.last_name = "Claire", "Navigateur"
        organization = session.scalars(
            select(Organization).where(Organization.uai == "0750999Z")
        ).one()
        colleague = teacher(
            session, organization, email="hugo@navigateur.example", first_name="Hugo",
            last_name="Collègue",
        )  # fmt: skip
        profile = session.scalars(
            select(TargetProfile).where(TargetProfile.content_key == "tp-competence-4.3")
        ).one()

        def campaign(name: str, type: CampaignType = CampaignType.ASSESSMENT, **fields):
            return campaign_admin.create_campaign(
                session, organization=organization, creator=fields.pop("creator", admin),
                name=name, type=type,
                target_profile=profile if type is CampaignType.ASSESSMENT else None, **fields,
            )  # fmt: skip

        identified = campaign(
            "Profils de la 3e A", CampaignType.PROFILES_COLLECTION,
            title="Votre profil pour l’orientation", external_id_label="Numéro d’élève",
        )  # fmt: skip
        campaign(
            "Évaluation de fin de cycle 4 — classes de 3e A, 3e B et 3e C (2025-2026)",
            title="Compétences numériques : bilan de fin de cycle",
            landing_text="Ce parcours dure environ 30 minutes. Prenez votre temps.",
        )  # fmt: skip
        campaign("Évaluation 4e B", creator=colleague, owner=colleague)
        archived = campaign("Évaluation 2024-2025")
        campaign_admin.archive(session, archived, admin)
        assessment = session.scalars(
            select(Campaign).where(Campaign.code == live_site.assessment_code)
        ).one()
        for n, (last_name, success, share, answers) in enumerate(
            [("Martin", 0.9, True, None), ("Bernard", 0.4, True, None),
             ("Petit", 0.7, False, None), ("Robert", 0.6, False, 3)]
        ):  # fmt: skip
            student = users.create_user(
                session, first_name="Élève", last_name=last_name,
                email=f"{last_name.lower()}@navigateur.example",
            )  # fmt: skip
            take_test(session, assessment, student, success=success, seed=n, share=share,
                      answers=answers)  # fmt: skip
        found = BusySchool(
            teacher_email="prof@navigateur.example",
            teacher_password=TEACHER_PASSWORD,
            teacher_name=admin.full_name,
            colleague_name=colleague.full_name,
            identified_code=identified.code,
            archived_code=archived.code,
        )
    return found


@pytest.fixture(scope="module")
def screens(browser):
    """`screens(width)`: a page in a window `width` px wide and 800 px high, each width its own
    browser context, opened on first use and kept for the module."""
    pages = {}

    def screen(width: int):
        if width not in pages:
            context = browser.new_context(locale="fr-FR", viewport={"width": width, "height": 800})
            page = pages[width] = context.new_page()
            page.set_default_timeout(10_000)
        return pages[width]

    yield screen
    for page in pages.values():
        page.context.close()


# -- the test LMS (test_lti.py, and the design tour's pages in its frame) ------------------------


@dataclass
class LmsSite:
    url: str
    database: Database
    campaign_name: str


@pytest.fixture(scope="module")
def lms_site(scratch_databases, tmp_path_factory) -> Iterator[LmsSite]:
    port = free_port()  # PUBLIC_URL must be the real address: tool and LMS call each other
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
