"""A teacher, in the panel: accepts the terms, creates a campaign, follows a student who shares,
and downloads the CSV export (parsed here)."""

import csv
import io

import pytest
from sqlalchemy import select

from campaigns.accounts import users
from campaigns.shared.models import Campaign, Organization, TargetProfile, User
from tests.orga_helpers import take_test

pytestmark = pytest.mark.browser
PASSWORD = "Prof-Navigateur-2026"


@pytest.fixture
def teacher_email(live_site):
    with live_site.database.session() as session, session.begin():
        admin = session.scalars(select(User).where(User.email == "prof@navigateur.example")).one()
        users.set_password(session, admin, PASSWORD)
        admin.first_name, admin.last_name = "Claire", "Navigateur"
    return "prof@navigateur.example"


def test_a_teacher_creates_a_campaign_follows_a_student_and_exports(page, live_site, teacher_email):
    page.goto(f"{live_site.url}/connexion")
    page.get_by_label("Adresse e-mail ou identifiant").fill(teacher_email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Je me connecte").click()

    # First visit: the terms of use, then the campaigns.
    page.get_by_label("J’accepte les conditions d’utilisation").check()
    page.get_by_role("button", name="Continuer").click()
    page.get_by_role("link", name="Créer une campagne").first.click()

    page.get_by_label("Nom de la campagne").fill("Classe de 4e B — navigateur")
    page.get_by_label("Évaluer les participants").check()
    # What to test: a group of two choices (a target profile or one competence).
    what = page.get_by_role("group", name="Que souhaitez-vous tester")
    assert what.get_by_label("Un profil cible").is_visible()
    what.get_by_label("Une compétence").select_option(
        label="4.3 Protéger la santé, le bien-être et l’environnement"
    )
    page.get_by_label("Titre du parcours").fill("Vos compétences numériques")
    page.get_by_role("button", name="Créer la campagne").click()
    assert page.get_by_role("heading", name="Classe de 4e B — navigateur").is_visible()

    with live_site.database.session() as session, session.begin():
        campaign = session.scalars(
            select(Campaign).where(Campaign.name == "Classe de 4e B — navigateur")
        ).one()
        assessed = session.get(TargetProfile, campaign.target_profile_id)
        assert assessed is not None and assessed.content_key == "tp-competence-4.3"
        assert page.get_by_text(campaign.code).first.is_visible()
        # A student takes the test and shares (through the services: the student's browser
        # journey has its own test).
        student = users.create_user(
            session, first_name="Lina", last_name="Partage", email="lina@navigateur.example"
        )
        take_test(session, campaign, student, success=0.8, seed=3)
        organization = session.get(Organization, campaign.organization_id)
        organization_name = organization.name if organization else ""

    page.get_by_role("link", name="Participants", exact=True).last.click()
    page.reload()
    row = page.get_by_role("row").filter(has_text="Partage")
    assert row.get_by_text("Résultats reçus").is_visible()
    row.get_by_role("link", name="Partage").click()
    assert page.get_by_text("Lina").first.is_visible()

    page.get_by_role("link", name="Résultats collectifs").click()
    assert page.get_by_role("heading", name="Résultats collectifs").first.is_visible()

    with page.expect_download() as download:
        page.get_by_role("link", name="Exporter les résultats (.csv)").click()
    content = download.value.path().read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads it as UTF-8
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig")), delimiter=";"))
    header, lines = rows[0], rows[1:]
    assert header[:3] == ["Nom de l'organisation", "ID Campagne", "Code"]
    assert len(lines) == 1
    line = dict(zip(header, lines[0], strict=True))
    assert line["Nom de l'organisation"] == organization_name
    assert line["Nom du Participant"] == "Partage"
    assert line["Prénom du Participant"] == "Lina"
    assert line["Partage (O/N)"] == "Oui"
