"""The teacher panel's charts in a real browser, on a 320 px phone and on a desktop: nothing
wider than the screen, no text drawn smaller than 12 px, labels written in full."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from campaigns.accounts import users
from campaigns.shared.models import Campaign, User
from tests.orga_helpers import take_test

pytestmark = pytest.mark.browser
PASSWORD = "Prof-Graphiques-2026"

# Every text of the charts: its rendered size (CSS px, after any scaling of an SVG) and whether
# it is cut by its box.
TEXTS = """() => [...document.querySelectorAll('.chart-bars, .chart-columns')].flatMap(chart =>
  [...chart.querySelectorAll('text, .chart-label, .chart-value, .chart-legend li')].map(el => {
    const box = el.getBoundingClientRect();
    const size = parseFloat(getComputedStyle(el).fontSize);
    const svg = el.closest('svg');
    const scale = svg && svg.getScreenCTM() ? svg.getScreenCTM().a : 1;
    return {text: el.textContent, size: size * scale, left: box.left, right: box.right,
            cut: el.scrollWidth > el.clientWidth + 1 && !svg};
  }))"""


@pytest.fixture(scope="module")
def campaign_with_activity(live_site):
    """The assessment campaign with participants over several days, one day of results."""
    with live_site.database.session() as session, session.begin():
        admin = session.scalars(select(User).where(User.email == "prof@navigateur.example")).one()
        users.set_password(session, admin, PASSWORD)
        admin.cgu_accepted_at = dt.datetime.now(dt.UTC)
        campaign = session.scalars(
            select(Campaign).where(Campaign.code == live_site.assessment_code)
        ).one()
        now = dt.datetime.now(dt.UTC)
        for n in range(12):
            student = users.create_user(
                session, first_name="Élève", last_name=f"Graphique{n}", email=f"g{n}@example.org"
            )
            participation = take_test(session, campaign, student, success=n / 12, seed=n)
            participation.created_at = now - dt.timedelta(days=n % 9 + 1)
            participation.shared_at = now
        return campaign.id


@pytest.mark.parametrize("width", [320, 1280])
def test_charts_fit_the_screen_and_keep_their_text_readable(
    browser, live_site, campaign_with_activity, width
):
    context = browser.new_context(locale="fr-FR", viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(f"{live_site.url}/connexion")
        page.get_by_label("Adresse e-mail ou identifiant").fill("prof@navigateur.example")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Je me connecte").click()
        for path, names in (
            ("", ["Répartition des participants par statut", "Participations commencées et"]),
            ("/resultats", ["Participants par taux de maîtrise"]),
        ):
            page.goto(f"{live_site.url}/orga/campagnes/{campaign_with_activity}{path}")
            for name in names:
                assert page.get_by_role("img", name=name).count() == 1
            texts = page.evaluate(TEXTS)
            assert texts
            for text in texts:
                assert text["size"] >= 12, text
                assert text["left"] >= 0 and text["right"] <= width, text
                assert not text["cut"], text
            charts = page.locator(".chart")
            for index in range(charts.count()):
                box = charts.nth(index).bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        page.goto(f"{live_site.url}/orga/campagnes/{campaign_with_activity}")
        assert page.get_by_text("En attente d’envoi", exact=True).first.is_visible()
        assert page.get_by_text("12 participants", exact=True).first.is_visible()
        legend = page.locator(".chart-legend")
        assert legend.get_by_text("Participations commencées").is_visible()
        assert legend.get_by_text("Résultats reçus").is_visible()
    finally:
        context.close()
