"""A new student, from the link the teacher shared to the results reaching the teacher."""

import pytest
from sqlalchemy import select

from campaigns.shared.models import Participation, ParticipationStatus
from tests.browser.answers import fill_answer
from tests.journey_helpers import timed_challenge

pytestmark = pytest.mark.browser


def sign_up(page, email):
    page.get_by_label("Prénom").fill("Camille")
    page.get_by_label("Nom", exact=True).fill("Durand")
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill("Navigateur-2026")
    page.get_by_label("J’accepte les conditions d’utilisation de Parcours").check()
    page.get_by_role("button", name="Je m’inscris").click()


def answer_current_question(page, *, right):
    fill_answer(page, right=right)
    page.get_by_role("button", name="Je valide").click()


def test_a_new_student_takes_the_whole_test_resumes_and_shares(page, live_site):
    page.goto(f"{live_site.url}/campagnes/{live_site.assessment_code}")
    assert page.get_by_role("heading", name="Commencez votre parcours").is_visible()
    page.get_by_role("button", name="Je commence").click()
    sign_up(page, "camille.navigateur@example.org")  # and straight on to the rules
    assert page.get_by_role("heading", name="Cherchez sur Internet").is_visible()
    for _ in range(3):
        page.get_by_role("link", name="Suivant").click()
    page.get_by_role("link", name="Je commence").click()

    checkpoints = answered = 0
    resumed = False
    while True:
        if page.get_by_role("heading", name="Vos réponses").count():
            checkpoints += 1
            page.get_by_text("Réponses et tutos").first.click()  # the correction opens
            if page.get_by_role("link", name="Voir mes résultats").count():
                page.get_by_role("link", name="Voir mes résultats").click()
                break
            page.get_by_role("link", name="Continuer mon parcours").click()
            continue
        if answered == 7 and not resumed:
            # The student closes the page and comes back through "Mes parcours".
            on_screen = page.locator("input[name=challenge_id]").first.get_attribute("value")
            page.goto(f"{live_site.url}/mes-parcours")
            page.get_by_role("link", name="Reprendre").click()
            assert (
                page.locator("input[name=challenge_id]").first.get_attribute("value") == on_screen
            )
            resumed = True
        answer_current_question(page, right=answered % 3 != 2)
        answered += 1
        assert answered < 120

    assert checkpoints >= 2
    assert page.get_by_role("heading", name="Vous maîtrisez").is_visible()
    page.get_by_role("button", name="J’envoie mes résultats").click()
    assert page.get_by_text("Vos résultats ont été envoyés").first.is_visible()
    with live_site.database.session() as session:
        shared = session.scalars(
            select(Participation).where(Participation.status == ParticipationStatus.SHARED)
        ).all()
        assert any(p.shared_results for p in shared)


def test_a_student_sends_a_profile_without_answering_anything(page, live_site):
    page.goto(f"{live_site.url}/campagnes/{live_site.collection_code}")
    page.get_by_role("button", name="Je commence").click()
    sign_up(page, "profil.navigateur@example.org")
    assert page.get_by_role("heading", name="Votre profil").is_visible()
    assert page.locator(".card").count() == 16
    assert page.get_by_text("/ 1024").is_visible()
    page.get_by_role("button", name="J’envoie mon profil").click()
    assert page.get_by_text("Votre profil a été envoyé").is_visible()


def test_the_question_page_works_with_the_keyboard_only(page, live_site):
    page.goto(f"{live_site.url}/campagnes/{live_site.assessment_code}")
    page.get_by_role("button", name="Je commence").click()
    sign_up(page, "clavier.navigateur@example.org")
    page.goto(f"{live_site.url}/campagnes/{live_site.assessment_code}/evaluation")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Aller au contenu"
    page.keyboard.press("Enter")
    first = page.locator("input[name=challenge_id]").first.get_attribute("value")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Je passe":
            break
    else:
        pytest.fail("“Je passe” cannot be reached with the keyboard")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("input[name=challenge_id]").first.get_attribute("value") != first


def test_the_countdown_of_a_timed_question_runs(page, live_site):
    from campaigns.journey import services as journey
    from campaigns.shared.models import Campaign, User

    page.goto(f"{live_site.url}/campagnes/{live_site.assessment_code}")
    page.get_by_role("button", name="Je commence").click()
    sign_up(page, "chrono.navigateur@example.org")
    with live_site.database.session() as session, session.begin():
        campaign = session.scalars(
            select(Campaign).where(Campaign.code == live_site.assessment_code)
        ).one()
        user = session.scalars(
            select(User).where(User.email == "chrono.navigateur@example.org")
        ).one()
        assessment = journey.open_assessment(
            session, journey.live_participation(session, campaign, user)
        )
        timed = timed_challenge(session, campaign)
        assessment.current_challenge_id, assessment.current_challenge_asked_at = timed.id, None
    page.goto(f"{live_site.url}/campagnes/{live_site.assessment_code}/evaluation")
    shown = int(page.locator("[data-seconds]").text_content())
    page.wait_for_timeout(2500)
    assert int(page.locator("[data-seconds]").text_content()) <= shown - 2


@pytest.mark.parametrize("width", [320, 390, 1280])
def test_the_terms_checkbox_sits_beside_its_label(browser, live_site, width):
    context = browser.new_context(viewport={"width": width, "height": 800}, locale="fr-FR")
    page = context.new_page()
    page.goto(f"{live_site.url}/inscription")
    with page.expect_navigation(wait_until="load"):  # styles applied before measuring
        page.click("main button[type=submit]")  # with its error under it, too
    box = page.locator("#cgu").bounding_box()
    label = page.locator("label[for=cgu]").bounding_box()
    context.close()
    assert 0 <= label["x"] - (box["x"] + box["width"]) <= 24  # just right of the box
    assert abs(label["y"] - box["y"]) <= 8  # on the same line as its first line
