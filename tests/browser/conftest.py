"""A live Parcours on 127.0.0.1 and headless Chromium (Debian's, installed by `make`) driven by
Playwright, as a student would use them."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from campaigns.orga import campaign_admin
from campaigns.shared.content import import_pack
from campaigns.shared.models import CampaignType, OrganizationType, TargetProfile
from config.app import create_app
from config.db import Database
from config.migrations import upgrade
from config.settings import Settings
from engine.content import BUNDLED_PACK
from tests.conftest import TEST_SECRET
from tests.factories import organization_with_admin

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
        public_url="http://127.0.0.1:5000",
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
