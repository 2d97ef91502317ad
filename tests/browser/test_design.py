"""The design tour: every page of the student's and the teacher's journeys, reached as they reach
them (links, buttons, forms, the links of their e-mails), then checked at phone and desktop widths:
nothing may be wider than the window (320, 390 and 1280 px), and axe-core may find nothing serious
or critical (390 and 1280 px; its moderate findings are printed, and summed up at the end).

A page of a test under way changes with every answer (the question shown, the answers of the last
checkpoint, the notice after an action), so the tour is walked once and keeps each page's response
as the browser got it; every check opens the page again at its own address with that response,
while its styles and scripts come from the live server. Each check opens what the user had in
front of them, in a context of its own width, however many times it runs.

Run: .venv/bin/pytest -q -p no:logging tests/browser/test_design.py (add -s to see each page's
moderate axe findings as they come; set PARCOURS_SCREENSHOTS to a folder to get every opening as a
full-page PNG there, for a look at the whole product)."""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from campaigns.shared.models import Campaign, Organization
from config.jobs import Job
from sso import registry
from tests.browser.answers import challenge_on_screen, fill_answer
from tests.browser.conftest import PUBLIC_URL
from tests.saml_idp import FakeIdp
from tests.saml_idp import student as saml_student

pytestmark = pytest.mark.browser

WIDTHS = (320, 390, 1280)
AXE_WIDTHS = (390, 1280)
BLOCKING = ("critical", "serious")
WALK_WIDTH = 1280

STUDENT_PAGES = [
    "student/home",
    "student/code-entry",
    "student/code-entry-unknown-code",
    "student/landing",
    "student/sign-up",
    "student/sign-up-errors",
    "student/landing-signed-in",
    "student/rules-1",
    "student/rules-4",
    "student/question-unanswered",
    "student/question-QCU",
    "student/question-QROC",
    "student/question-QCM",
    "student/question-QROCM",
    "student/question-timed",
    "student/checkpoint",
    "student/checkpoint-final",
    "student/results",
    "student/results-sent",
    "student/external-id",
    "student/collection",
    "student/collection-sent",
    "student/my-campaigns",
    "student/my-profile",
    "student/account",
    "student/change-password",
    "student/confirm-email",
    "student/sign-in",
    "student/sign-in-error",
    "student/forgotten-password",
    "student/forgotten-password-sent",
    "student/reset-password",
    "student/archived-campaign",
    "student/not-found",
]
TEACHER_PAGES = [
    "teacher/terms",
    "teacher/campaigns",
    "teacher/campaigns-archived",
    "teacher/new-campaign",
    "teacher/new-campaign-errors",
    "teacher/campaign-activity-empty",
    "teacher/campaign-activity",
    "teacher/campaign-participants",
    "teacher/participant",
    "teacher/campaign-results",
    "teacher/campaign-analysis",
    "teacher/campaign-edit",
    "teacher/collection-participants",
    "teacher/collection-participant",
    "teacher/collection-results",
    "teacher/learners-empty",
    "teacher/learners",
    "teacher/team",
    "teacher/remove-member",
    "teacher/documentation",
    "teacher/account",
    "teacher/invitation",
]
ENT_PAGES = [  # a student arriving from the ENT (SAML, the GAR), then a refused arrival
    "ent/match",
    "ent/match-error",
    "ent/match-none",
    "ent/refused",
]
ADMIN_PAGES = [  # a district administrator (/admin), and a connection test of the ENT
    "admin/organizations",
    "admin/organizations-search",
    "admin/new-organization",
    "admin/new-organization-errors",
    "admin/organization",
    "admin/organization-edit",
    "admin/organization-archive",
    "admin/journal",
    "admin/lti-platforms",
    "admin/lti-registration-url",
    "admin/new-lti-platform",
    "admin/new-lti-platform-errors",
    "admin/lti-platform",
    "admin/lti-platform-edit",
    "admin/lti-platform-deactivate",
    "admin/lti-deployment-remove",
    "admin/idps",
    "admin/new-idp",
    "admin/new-idp-errors",
    "admin/idp",
    "admin/idp-edit",
    "admin/idp-deactivate",
    "admin/idp-test",
    "admin/person",
    "admin/person-erase",
]
LMS_PAGES = [  # Parcours in the frame of an LMS (the test LMS, LTI 1.3), as each person gets it
    "lms/pick",
    "lms/student-launch",
    "lms/teacher-terms",
    "lms/teacher-launch",
    "lms/refused",
]
PAGES = STUDENT_PAGES + TEACHER_PAGES + ENT_PAGES + ADMIN_PAGES + LMS_PAGES
KINDS = ("QCU", "QROC", "QCM", "QROCM", "timed")  # of questions: each has its page

STUDENT = {"first": "Camille", "last": "Durand", "email": "camille.design@example.org"}
STUDENT_PASSWORD = "Navigateur-2026"
LEARNERS_CSV = "\r\n".join(
    [
        "Nom;Prénom;Date de naissance;Division;INE",
        "Durand;Camille;12/03/2011;4E2;1234567890A",
        "Martin;Léa;05/01/2011;4E1;",
        "Bernard;Noé;30/11/2010;4E1;",
        "Petit-Dubois de la Fontaine;Marie-Alexandrine;17/07/2011;4E2;",
    ]
).encode()


# -- the walk ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    name: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes


# Headers a replayed response must not carry (the body is kept decoded; no cookie is set again).
DROPPED_HEADERS = {"set-cookie", "content-length", "content-encoding", "transfer-encoding"}


@dataclass
class Tour:
    visits: dict[str, Visit] = field(default_factory=dict)
    failure: str | None = None  # where the walk stopped, when it could not reach the end
    last_url: str = ""  # the last page a walk reached

    def keep(self, name: str, response) -> None:
        assert response is not None, f"{name}: no response"
        if name in self.visits:
            return  # the first time the user meets the page
        headers = {
            k: v for k, v in response.all_headers().items() if k.lower() not in DROPPED_HEADERS
        }
        self.visits[name] = Visit(name, response.url, response.status, headers, response.body())


class Walker:
    """A browser tab that keeps the pages it is asked to keep."""

    def __init__(self, page, tour: Tour, base: str) -> None:
        self.page, self.tour, self.base = page, tour, base

    def goto(self, path: str, keep: str | None = None):
        url = path if path.startswith("http") else self.base + path
        response = self.page.goto(url, wait_until="domcontentloaded")
        self.tour.last_url = response.url
        if keep:
            self.tour.keep(keep, response)
        return response

    def click(self, locator, keep: str | None = None):
        """Click what leads to another page (a link, a form's button) and wait for it."""
        with self.page.expect_navigation(wait_until="domcontentloaded") as navigation:
            locator.click()
        response = navigation.value
        self.tour.last_url = response.url
        if keep:
            self.tour.keep(keep, response)
        return response

    def link(self, name: str, keep: str | None = None, *, exact: bool = True):
        return self.click(self.page.get_by_role("link", name=name, exact=exact).first, keep)

    def tab(self, name: str, keep: str | None = None):
        tabs = self.page.get_by_role("navigation", name="Onglets de la campagne")
        return self.click(tabs.get_by_role("link", name=name, exact=True), keep)

    def button(self, name: str, keep: str | None = None, *, exact: bool = True):
        return self.click(self.page.get_by_role("button", name=name, exact=exact).first, keep)


def mailed_link(live_site, to: str, path_start: str) -> str:
    """The newest link starting with `path_start` in the e-mails queued for `to` (what the user
    finds in their mailbox), on the live server."""
    with live_site.database.session() as session:
        mails = session.scalars(
            select(Job).where(Job.kind == "mail.send").order_by(Job.id.desc())
        ).all()
    for mail in mails:
        if mail.payload.get("to") != to:
            continue
        for url in re.findall(r"https?://[^\s<>\"]+", mail.payload.get("body", "")):
            path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
            if path.startswith(path_start):
                return live_site.url + path
    raise AssertionError(f"no e-mail to {to} with a link to {path_start}…")


def answer(walker: Walker, *, right: bool):
    """Answer the question on screen (right or wrong) and return the page it leads to."""
    fill_answer(walker.page, right=right)
    return walker.button("Je valide")


def question_kind(walker: Walker) -> str:
    challenge = challenge_on_screen(walker.page)
    return "timed" if challenge.is_timed else challenge.type.value


def walk_student(walker: Walker, live_site, school) -> None:
    page, code = walker.page, live_site.assessment_code
    walker.goto("/", keep="student/home")
    walker.link("J’ai un code", keep="student/code-entry")
    page.get_by_label("Code du parcours").fill("ZZZZ2345Z")
    walker.button("Commencer mon parcours", keep="student/code-entry-unknown-code")
    page.get_by_label("Code du parcours").fill(code.lower())
    walker.button("Commencer mon parcours", keep="student/landing")
    walker.button("Je commence", keep="student/sign-up")
    walker.button("Je m’inscris", keep="student/sign-up-errors")
    page.get_by_label("Prénom").fill(STUDENT["first"])
    page.get_by_label("Nom", exact=True).fill(STUDENT["last"])
    page.get_by_label("Adresse e-mail").fill(STUDENT["email"])
    page.get_by_label("Mot de passe").fill(STUDENT_PASSWORD)
    page.get_by_label("J’accepte les conditions d’utilisation de Parcours").check()
    response = walker.button("Je m’inscris")
    if "/regles/" not in response.url:  # back on the landing page, signed in
        response = walker.button("Je commence")
    walker.tour.keep("student/rules-1", response)
    for _ in range(3):
        response = walker.link("Suivant")
    walker.tour.keep("student/rules-4", response)
    response = walker.link("Je commence")
    walker.tour.keep(f"student/question-{question_kind(walker)}", response)
    walker.button("Je valide", keep="student/question-unanswered")  # nothing chosen

    answered = 0
    while True:
        assert answered < 120, "the test never ends"
        response = answer(walker, right=answered % 3 != 2)
        answered += 1
        if "/checkpoint" in response.url:
            if "final=1" in response.url:
                walker.tour.keep("student/checkpoint-final", response)
                break
            walker.tour.keep("student/checkpoint", response)
            response = walker.link("Continuer mon parcours")
        walker.tour.keep(f"student/question-{question_kind(walker)}", response)
    walker.link("Voir mes résultats", keep="student/results")
    walker.button("J’envoie mes résultats", keep="student/results-sent")

    # A second campaign, from "Mes parcours": a profiles collection asking for a student number.
    walker.link("Mes parcours")
    walker.link("Saisir un code")
    page.get_by_label("Code du parcours").fill(school.identified_code)
    walker.button("Commencer mon parcours", keep="student/landing-signed-in")
    walker.button("Je commence", keep="student/external-id")
    page.get_by_label("Numéro d’élève").fill("4E2-017")
    walker.button("Continuer", keep="student/collection")
    walker.button("J’envoie mon profil", keep="student/collection-sent")

    walker.link("Mes parcours", keep="student/my-campaigns")
    walker.link("Mon profil", keep="student/my-profile")
    walker.link(f"{STUDENT['first']} {STUDENT['last']}", keep="student/account")
    walker.link("Changer de mot de passe", keep="student/change-password")
    walker.goto(
        mailed_link(live_site, STUDENT["email"], "/mon-compte/confirmer/"),
        keep="student/confirm-email",
    )
    walker.button("Se déconnecter")

    walker.link("Se connecter", keep="student/sign-in")
    page.get_by_label("Adresse e-mail ou identifiant").fill(STUDENT["email"])
    page.get_by_label("Mot de passe").fill("pas-le-bon-1A")
    walker.button("Je me connecte", keep="student/sign-in-error")
    walker.link("Mot de passe oublié ?", keep="student/forgotten-password")
    page.get_by_label("Adresse e-mail").fill(STUDENT["email"])
    walker.button("Recevoir le lien", keep="student/forgotten-password-sent")
    walker.goto(
        mailed_link(live_site, STUDENT["email"], "/mot-de-passe-oublie/"),
        keep="student/reset-password",
    )
    walker.goto(f"/campagnes/{school.archived_code}", keep="student/archived-campaign")
    walker.goto("/cette-page-n-existe-pas", keep="student/not-found")


def ask_missing_kinds(walker: Walker, live_site) -> None:
    """The kinds of question the walk was not asked (the adaptive test chose others): a second
    student, signed in, is asked one of each, as the countdown test of test_student does."""
    from campaigns.accounts import users
    from campaigns.journey import services as journey
    from campaigns.shared.models import Assessment, Campaign

    missing = [kind for kind in KINDS if f"student/question-{kind}" not in walker.tour.visits]
    if not missing:
        return
    code = live_site.assessment_code
    with live_site.database.session() as session, session.begin():
        campaign = session.scalars(select(Campaign).where(Campaign.code == code)).one()
        user = users.create_user(
            session, first_name="Zoé", last_name="Lefèvre", email="zoe.design@example.org",
            password=STUDENT_PASSWORD,
        )  # fmt: skip
        assessment_id = journey.open_assessment(session, journey.join(session, campaign, user)).id
        content = journey.campaign_content(session, campaign)
        challenges = [c for s in content.index.skills.values() for c in s.playable_challenges]
    walker.goto("/connexion")
    walker.page.get_by_label("Adresse e-mail ou identifiant").fill("zoe.design@example.org")
    walker.page.get_by_label("Mot de passe").fill(STUDENT_PASSWORD)
    walker.button("Je me connecte")
    for kind in missing:
        challenge = next(
            c for c in challenges
            if (c.is_timed if kind == "timed" else c.type.value == kind and not c.is_timed)
        )  # fmt: skip
        with live_site.database.session() as session, session.begin():
            assessment = session.get(Assessment, assessment_id)
            assessment.current_challenge_id, assessment.current_challenge_asked_at = (
                challenge.id, None,
            )  # fmt: skip
        walker.goto(f"/campagnes/{code}/evaluation", keep=f"student/question-{kind}")
        assert question_kind(walker) == kind


def walk_teacher(walker: Walker, live_site, school, *, invitee: Walker) -> None:
    page = walker.page
    walker.goto("/orga")  # signed out: the sign-in page first
    page.get_by_label("Adresse e-mail ou identifiant").fill(school.teacher_email)
    page.get_by_label("Mot de passe").fill(school.teacher_password)
    walker.button("Je me connecte", keep="teacher/terms")
    page.get_by_label("J’accepte les conditions d’utilisation").check()
    walker.button("Continuer", keep="teacher/campaigns")
    page.get_by_label("Archivées").check()
    walker.button("Filtrer", keep="teacher/campaigns-archived")

    walker.link("Campagnes")
    walker.link("Créer une campagne", keep="teacher/new-campaign")
    walker.button("Créer la campagne", keep="teacher/new-campaign-errors")
    page.get_by_label("Nom de la campagne").fill("Classe de 4e B — navigateur")
    page.get_by_label("Évaluer les participants").check()
    page.get_by_role("group", name="Que souhaitez-vous tester").get_by_label(
        "Une compétence"
    ).select_option(label="4.3 Protéger la santé, le bien-être et l’environnement")
    page.get_by_label("Titre du parcours").fill("Vos compétences numériques")
    walker.button("Créer la campagne", keep="teacher/campaign-activity-empty")

    walker.link("Campagnes")
    walker.link("Navigateur", keep="teacher/campaign-activity")
    walker.tab("Participants", keep="teacher/campaign-participants")
    row = page.get_by_role("row").filter(has_text=STUDENT["last"])
    walker.click(row.get_by_role("link", name=STUDENT["last"]), keep="teacher/participant")
    walker.tab("Résultats collectifs", keep="teacher/campaign-results")
    walker.tab("Analyse", keep="teacher/campaign-analysis")
    walker.link("Modifier", keep="teacher/campaign-edit")

    walker.link("Campagnes")
    walker.link("Profils de la 3e A")
    walker.tab("Participants", keep="teacher/collection-participants")
    row = page.get_by_role("row").filter(has_text=STUDENT["last"])
    walker.click(
        row.get_by_role("link", name=STUDENT["last"]), keep="teacher/collection-participant"
    )
    walker.tab("Résultats collectifs", keep="teacher/collection-results")

    walker.link("Élèves", keep="teacher/learners-empty")
    page.get_by_label("Fichier des élèves (.csv)").set_input_files(
        files=[{"name": "eleves.csv", "mimeType": "text/csv", "buffer": LEARNERS_CSV}]
    )
    walker.button("Importer", keep="teacher/learners")

    walker.link("Équipe")
    page.get_by_label("Adresse e-mail").fill("nouvelle.collegue@navigateur.example")
    walker.button("Ajouter un membre", keep="teacher/team")
    walker.link(f"Retirer : {school.colleague_name}", keep="teacher/remove-member")
    walker.link("Documentation", keep="teacher/documentation")
    walker.link(school.teacher_name, keep="teacher/account")

    # The colleague invited above opens the link of their e-mail (signed out).
    invitee.goto(
        mailed_link(live_site, "nouvelle.collegue@navigateur.example", "/invitation/"),
        keep="teacher/invitation",
    )


# -- the ENT and the district ----------------------------------------------------------------------

IDP_SLUG = "ent-college"
ENT_STUDENT = saml_student(
    IDO=["gar-ido-design-1"], PRE=["Inès"], NOM=["Lambert"], DIV=["4E2##4e 2"]
)
ENT_BIRTHDATE = dt.date(2011, 9, 2)
ADMIN = {"email": "district@navigateur.example", "password": "District-Navigateur-2026"}


class Ent:
    """The ENT's login page, on a server of its own on 127.0.0.1 (same site as the live server, as
    the state cookie is SameSite=Lax on http): it answers our AuthnRequest with a page whose
    button posts a response signed by the IdP's key, about whoever `attributes` says, to our ACS."""

    def __init__(self, live_url: str) -> None:
        self.live_url = live_url
        self.attributes: dict[str, list[str]] = ENT_STUDENT
        self.server = make_server("127.0.0.1", 0, self.login_page)
        self.idp = FakeIdp(
            entity_id="https://ent.navigateur.example/idp",
            sso_url=f"http://127.0.0.1:{self.server.server_port}/sso",
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @Request.application
    def login_page(self, request: Request) -> Response:
        request_id, acs, query = FakeIdp.request_of(request.url)
        signed = self.idp.response(
            acs=acs, audience=f"{PUBLIC_URL}/sso/saml/{IDP_SLUG}/metadata.xml",
            attributes=self.attributes, in_response_to=request_id,
        )  # fmt: skip
        relay = "".join(
            f'<input type="hidden" name="RelayState" value="{html.escape(value)}">'
            for value in query.get("RelayState", [])
        )
        return Response(
            '<!doctype html><html lang="fr"><title>ENT</title><form method="post" '
            f'action="{self.live_url}{urlsplit(acs).path}">'
            f'<input type="hidden" name="SAMLResponse" value="{signed}">{relay}'
            "<button>Continuer vers Parcours</button></form></html>",
            content_type="text/html; charset=utf-8",
        )


@pytest.fixture(scope="module")
def ent(live_site) -> Iterator[Ent]:
    found = Ent(live_site.url)
    found.thread.start()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()
        found.thread.join()


def type_birthdate(page, day: str, month: str, year: str) -> None:
    for label, value in (("Jour", day), ("Mois", month), ("Année", year)):
        page.get_by_label(label, exact=True).fill(value)


def walk_ent_student(walker: Walker, live_site, ent: Ent) -> None:
    """A student of the school, on the learner list, arrives from the ENT: the birth date once
    (a malformed one, a wrong one, then theirs), then their campaigns. Then an arrival the IdP does
    not serve: a page that says so."""
    from campaigns.shared.models import Learner

    with live_site.database.session() as session, session.begin():
        school = session.scalars(select(Organization).where(Organization.uai == "0750999Z")).one()
        registry.add_idp(
            session, slug=IDP_SLUG, metadata=ent.idp.metadata(), organizations=[school],
            name="ENT du collège (GAR)",
        )  # fmt: skip
        session.add(
            Learner(
                organization_id=school.id, first_name="Inès", last_name="Lambert",
                birthdate=ENT_BIRTHDATE, division="4E2",
            )
        )  # fmt: skip
    page = walker.page
    walker.goto(f"/sso/saml/{IDP_SLUG}/login")
    walker.button("Continuer vers Parcours", keep="ent/match")
    type_birthdate(page, "31", "2", "11")  # not a date
    walker.button("Retrouver mes parcours", keep="ent/match-error")
    type_birthdate(page, "1", "9", "2011")  # not theirs
    walker.button("Retrouver mes parcours", keep="ent/match-none")
    type_birthdate(page, *map(str, (ENT_BIRTHDATE.day, ENT_BIRTHDATE.month, ENT_BIRTHDATE.year)))
    response = walker.button("Retrouver mes parcours")
    assert urlsplit(response.url).path == "/mes-parcours", response.url
    walker.button("Se déconnecter")

    ent.attributes = saml_student(IDO=["gar-ido-design-2"], UAI=["0130001X"])
    walker.goto(f"/sso/saml/{IDP_SLUG}/login")
    response = walker.button("Continuer vers Parcours", keep="ent/refused")
    assert urlsplit(response.url).path.endswith("/acs") and response.status == 403, response.url


def walk_registry(walker: Walker, kind: str, *, section: str, add: str, save: str, item: str):
    """A registry of /admin (LTI platforms, identity providers), from its list: the add form, sent
    empty (its errors); then `item`'s page, its edit form and its deactivation question, each left
    by "Annuler". Kept as admin/new-<kind>, admin/new-<kind>-errors, admin/<kind>,
    admin/<kind>-edit and admin/<kind>-deactivate; the walk ends on `item`'s page."""
    walker.link(add, keep=f"admin/new-{kind}")
    walker.button(save, keep=f"admin/new-{kind}-errors")
    walker.link(section)
    walker.link(item, keep=f"admin/{kind}")
    for action, page in (("Modifier", "edit"), ("Désactiver", "deactivate")):
        walker.link(action, keep=f"admin/{kind}-{page}")
        walker.link("Annuler")


def walk_district(walker: Walker, live_site, ent: Ent) -> None:
    """A district administrator: organizations, LTI platforms (one with a grade its LMS
    refused), identity providers (a connection test, a person's data)."""
    from campaigns.accounts import users
    from campaigns.shared.models import InstanceAdmin
    from config.db import utcnow
    from lti_tool.models import GradeStatus, LtiLearner, LtiResourceLink
    from tests.lti_platform import SCORE_SCOPE, FakePlatform

    with live_site.database.session() as session, session.begin():
        school = session.scalars(select(Organization).where(Organization.uai == "0750999Z")).one()
        admin = users.create_user(
            session, first_name="Dominique", last_name="District", email=ADMIN["email"],
            password=ADMIN["password"],
        )  # fmt: skip
        admin.email_verified_at = utcnow()
        session.add(InstanceAdmin(user_id=admin.id, granted_at=utcnow()))
        lms = FakePlatform()
        platform = lms.register(session, school, name="Moodle du collège")
        campaign = session.scalars(
            select(Campaign).where(Campaign.code == live_site.assessment_code)
        ).one()
        link = LtiResourceLink(
            deployment_id=platform.deployments[0].id, resource_link_id="rl-design",
            campaign_id=campaign.id, lineitem_url=lms.lineitem_url(), ags_scopes=[SCORE_SCOPE],
        )  # fmt: skip
        session.add(link)
        session.flush()
        camille = users.find_user_by_login(session, STUDENT["email"])
        assert camille is not None
        session.add(
            LtiLearner(
                resource_link_id=link.id, user_id=camille.id, sub="moodle-user-17",
                grade_status=GradeStatus.FAILED, last_error="HTTP 503: Service Unavailable",
            )
        )  # fmt: skip
        deployment_id = platform.deployments[0].deployment_id

    page = walker.page
    walker.goto("/connexion")
    page.get_by_label("Adresse e-mail ou identifiant").fill(ADMIN["email"])
    page.get_by_label("Mot de passe").fill(ADMIN["password"])
    walker.button("Je me connecte", keep="admin/organizations")
    page.get_by_label("Rechercher par nom ou par code UAI").fill("navig")
    walker.button("Filtrer", keep="admin/organizations-search")
    walker.link("Créer une organisation", keep="admin/new-organization")
    walker.button("Créer l’organisation", keep="admin/new-organization-errors")
    page.locator("#name").fill("Lycée Jean-Baptiste-Poquelin de Saint-Germain-en-Laye")
    page.get_by_label("Code UAI").fill("0781234B")
    page.get_by_label("Adresse e-mail du premier administrateur").fill("direction@poquelin.example")
    walker.button("Créer l’organisation", keep="admin/organization")
    walker.link("Modifier", keep="admin/organization-edit")
    walker.link("Annuler")
    walker.link("Archiver", keep="admin/organization-archive")
    walker.link("Journal", keep="admin/journal")

    walker.link("Plateformes LTI", keep="admin/lti-platforms")
    walker.button("Obtenir le lien", keep="admin/lti-registration-url")
    walker.link("Plateformes LTI")
    walk_registry(
        walker, "lti-platform", section="Plateformes LTI", add="Ajouter une plateforme",
        save="Enregistrer la plateforme", item="Moodle du collège",
    )  # fmt: skip
    walker.link(f"Retirer le déploiement {deployment_id}", keep="admin/lti-deployment-remove")

    walker.link("Fournisseurs d’identité", keep="admin/idps")
    walk_registry(
        walker, "idp", section="Fournisseurs d’identité", add="Ajouter un fournisseur d’identité",
        save="Enregistrer le fournisseur d’identité", item="ENT du collège (GAR)",
    )  # fmt: skip
    ent.attributes = ENT_STUDENT
    walker.link("Tester la connexion")
    walker.button("Continuer vers Parcours", keep="admin/idp-test")
    walker.link("Retour au fournisseur d’identité")
    page.get_by_label("Identifiant de la personne (IDO pour le GAR)").fill(ENT_STUDENT["IDO"][0])
    walker.button("Chercher", keep="admin/person")
    walker.button("Effacer ce compte…", keep="admin/person-erase")


def walk_lms(walker: Walker, lms_site) -> None:
    """In the test LMS, Parcours opens in an iframe: the teacher picks a campaign for an activity
    (deep linking), a student launches it, the teacher launches it (the campaign's page), and a
    launch whose state the browser lost is refused. The pages kept are the frame's documents."""
    page = walker.page
    documents: list = []  # the frame's pages, as they arrive
    page.on(
        "response",
        lambda r: (
            documents.append(r)
            if r.request.resource_type == "document"
            and r.frame.name == "outil"
            and not 300 <= r.status < 400
            else None
        ),
    )

    def frame_page(name: str, ready, path: str, status: int = 200) -> None:
        """Keep the frame's page once `ready` shows: the last document the frame got, which must
        be at `path` (its start) with `status`."""
        ready.wait_for()
        last = documents[-1]
        assert urlsplit(last.url).path.startswith(path) and last.status == status, (
            f"{name}: the frame shows {last.url} ({last.status})"
        )
        walker.tour.keep(name, last)

    tool = page.frame_locator("iframe[name=outil]")
    walker.goto(lms_site.url + "/dev/lms")
    page.get_by_role("button", name="Ajouter une activité Parcours").click()
    picker = tool.get_by_role("button", name="Choisir ce parcours", exact=True)
    frame_page("lms/pick", picker, "/lti/choisir-un-parcours")
    tool.get_by_role("button", name="Choisir ce parcours", exact=True).click()
    tool.get_by_role("heading", name="Activité ajoutée au cours").wait_for()
    walker.goto(lms_site.url + "/dev/lms")
    page.get_by_role("button", name="Lancer : Léa Martin").click()
    frame_page("lms/student-launch", tool.get_by_role("link", name="Suivant"), "/campagnes/")
    walker.goto(lms_site.url + "/dev/lms")
    page.get_by_role("button", name="Lancer : Claire Durand").click()
    terms = tool.get_by_label("J’accepte les conditions d’utilisation")
    frame_page("lms/teacher-terms", terms, "/orga/cgu")
    terms.check()
    tool.get_by_role("button", name="Continuer").click()
    heading = tool.get_by_role("heading", name=lms_site.campaign_name)
    frame_page("lms/teacher-launch", heading, "/orga/campagnes/")

    def losing_the_state(route):  # third-party cookies blocked, no storage: nothing to check
        page.context.clear_cookies()
        page.evaluate("() => window.sessionStorage.clear()")
        route.continue_()

    walker.goto(lms_site.url + "/dev/lms")
    page.route(re.compile(r"/dev/lms/auth\?"), losing_the_state)
    page.get_by_role("button", name="Lancer : Léa Martin").click()
    frame_page("lms/refused", tool.get_by_text("demandée par ce navigateur"), "/lti/launch", 400)


@pytest.fixture(scope="module")
def tour(browser, live_site, busy_school, ent, lms_site) -> Tour:
    """Every journey, walked once, each user in a browser context of their own. Where a step
    fails (a page changed under the walk), the pages reached so far are still checked and the
    others fail with that step's error."""
    found, opened = Tour(), []

    def walker() -> Walker:
        context = browser.new_context(locale="fr-FR", viewport={"width": WALK_WIDTH, "height": 800})
        opened.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return Walker(page, found, live_site.url)

    walks = {
        "student": lambda: walk_student(walker(), live_site, busy_school),
        "second student": lambda: ask_missing_kinds(walker(), live_site),
        "teacher": lambda: walk_teacher(walker(), live_site, busy_school, invitee=walker()),
        "ENT student": lambda: walk_ent_student(walker(), live_site, ent),
        "district administrator": lambda: walk_district(walker(), live_site, ent),
        "LMS": lambda: walk_lms(walker(), lms_site),
    }
    for who, walk in walks.items():
        found.last_url = ""
        try:
            walk()
        except Exception:
            found.failure = (found.failure or "") + (
                f"the {who}'s walk stopped after {found.last_url}:\n"
                f"{traceback.format_exc(limit=4)}\n"
            )
        finally:
            for context in opened:
                context.close()
            opened.clear()
    return found


def visit_of(tour: Tour, name: str) -> Visit:
    if name in tour.visits:
        return tour.visits[name]
    pytest.fail(f"{name} was not reached: {tour.failure or 'the walk never met it'}")


def show(page, visit: Visit) -> None:
    """Open `visit` at its address, as the user got it; then unfold what the user can unfold
    (every <details>: answers and tutorials, the report form) so that it is checked too."""

    def replay(route):
        route.fulfill(status=visit.status, headers=visit.headers, body=visit.body)

    page.route(lambda url: url == visit.url, replay, times=1)
    response = page.goto(visit.url, wait_until="load")
    assert response is not None and response.status == visit.status
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")


# The page's width, and the elements that stick out of the window: "starts" are those whose
# parent fits (where the overflow begins), "innermost" those that hold no other offender (often
# the real cause: a long word, a fixed width, a table). Elements inside a scrolling or clipping
# box that fits do not count (they scroll inside it); text runs count on their own (long words).
OVERFLOW_JS = """
() => {
  const doc = document.documentElement, limit = window.innerWidth;
  const fits = (el) => el.getBoundingClientRect().right <= limit + 0.5;
  const scrollsInside = (from) => {
    for (let p = from; p && p !== doc && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== "visible" && fits(p)) return true;
    }
    return false;
  };
  const describe = (el, rect, text) => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += "#" + el.id;
    if (el.classList.length) name += "." + Array.from(el.classList).join(".");
    const words = (text ?? el.textContent ?? "").replace(/\\s+/g, " ").trim().slice(0, 50);
    return { what: name, text: words, right: Math.round(rect.right), width: Math.round(rect.width),
             node: el };
  };
  const offenders = [];
  for (const el of [document.body, ...document.body.querySelectorAll("*")]) {
    const rect = el.getBoundingClientRect();
    if ((rect.width === 0 && rect.height === 0) || rect.right <= limit + 0.5) continue;
    if (scrollsInside(el.parentElement)) continue;
    offenders.push(describe(el, rect));
  }
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  while (walker.nextNode()) {
    const node = walker.currentNode, parent = node.parentElement;
    if (!node.textContent.trim() || !parent) continue;
    range.selectNodeContents(node);
    const rect = range.getBoundingClientRect();
    if (rect.right > limit + 0.5 && fits(parent) && !scrollsInside(parent)) {
      texts.push(describe(parent, rect, node.textContent));
    }
  }
  const nodes = new Set(offenders.map((o) => o.node));
  const starts = offenders.filter((o) => !nodes.has(o.node.parentElement));
  const innermost = offenders.filter(
    (o) => !offenders.some((other) => other !== o && o.node.contains(other.node)));
  const plain = (list) => list.sort((a, b) => b.right - a.right).slice(0, 6)
    .map(({ node, ...rest }) => rest);
  // Overflow hidden on the page itself would hide the scroll bar, not the problem.
  const hidden = [doc, document.body].some((el) => getComputedStyle(el).overflowX !== "visible");
  return { scrollWidth: doc.scrollWidth, innerWidth: limit, starts: plain(starts),
           innermost: plain(innermost), texts: plain(texts),
           cut: hidden && (starts.length > 0 || texts.length > 0) };
}
"""


@dataclass
class Measures:
    visit: Visit
    overflow: list[tuple[str, dict]]  # (state, what OVERFLOW_JS found), menu folded then open
    violations: list[dict] | None  # axe-core's, at the widths it runs at


@pytest.fixture(scope="module")
def measure(tour, screens):
    """`measure(name, width)`: the page opened once at that width and measured: its width with
    the menu folded, then unfolded (when the header has a menu button), then axe-core's findings
    with everything unfolded. Both checks read the same opening."""
    from axe_playwright_python.sync_playwright import Axe

    axe, done, files, served = Axe(), {}, {}, set()
    shots = (
        Path(os.environ["PARCOURS_SCREENSHOTS"]) if os.environ.get("PARCOURS_SCREENSHOTS") else None
    )
    if shots:
        shots.mkdir(parents=True, exist_ok=True)

    def static_file(route):
        # Styles, scripts and images: fetched once from the live server, then from memory (a
        # routed page has no HTTP cache, and they do not change during the run).
        url = route.request.url
        if url not in files:
            response = route.fetch()
            files[url] = (response.status, response.headers, response.body())
        status, headers, body = files[url]
        route.fulfill(status=status, headers=headers, body=body)

    def measured(name: str, width: int) -> Measures:
        if (name, width) not in done:
            visit = visit_of(tour, name)
            page = screens(width)
            if width not in served:
                page.route(re.compile(r"^https?://[^/]+/static/"), static_file)
                served.add(width)
            show(page, visit)
            if shots:  # for a look at every page: PARCOURS_SCREENSHOTS=<folder>
                page.screenshot(
                    path=shots / f"{name.replace('/', '-')}-{width}.png", full_page=True
                )
            overflow = [("", page.evaluate(OVERFLOW_JS))]
            toggle = page.locator("header button[aria-expanded=false]")
            if toggle.count() and toggle.first.is_visible():
                toggle.first.click()
                overflow.append((" (menu open)", page.evaluate(OVERFLOW_JS)))
            violations = axe.run(page).response["violations"] if width in AXE_WIDTHS else None
            done[(name, width)] = Measures(visit, overflow, violations)
        return done[(name, width)]

    return measured


# -- widths ---------------------------------------------------------------------------------------


def overflow_report(found: dict) -> str:
    lines = []
    for title, key in (
        ("overflow starts at", "starts"),
        ("innermost offenders", "innermost"),
        ("text running past the edge", "texts"),
    ):
        if found[key]:
            lines.append(f"    {title}:")
            lines += [
                f"      {o['what']} right={o['right']} width={o['width']} “{o['text']}”"
                for o in found[key]
            ]
    return "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", PAGES)
def test_nothing_is_wider_than_the_window(measure, name, width):
    measures = measure(name, width)
    problems, seen = [], 0
    for state, found in measures.overflow:
        if found["scrollWidth"] > max(found["innerWidth"], seen):  # the open menu: if it adds
            problems.append(
                f"  {name}{state} at {width} px: the page is {found['scrollWidth']} px wide "
                f"(+{found['scrollWidth'] - found['innerWidth']} px)\n{overflow_report(found)}"
            )
        elif found["cut"] and not problems:
            problems.append(
                f"  {name}{state} at {width} px: content is cut off at the window's right edge "
                f"(overflow hidden on the page)\n{overflow_report(found)}"
            )
        seen = max(seen, found["scrollWidth"])
    if problems:
        pytest.fail(
            f"wider than the window ({measures.visit.url}):\n" + "\n".join(problems), pytrace=False
        )


# -- axe-core -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def axe_summary(request):
    """What axe-core found on each page, written to the terminal at the end of the module."""
    found: dict[tuple[str, int], list[dict]] = {}
    yield found
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not found:
        return
    counts: dict[str, int] = {}
    lines = []
    for (name, width), violations in sorted(found.items()):
        by_impact: dict[str, list[str]] = {}
        for v in violations:
            by_impact.setdefault(v["impact"], []).append(f"{v['id']} ×{len(v['nodes'])}")
            counts[v["impact"]] = counts.get(v["impact"], 0) + 1
        if by_impact:
            moderate = len(by_impact.get("moderate", []))
            listed = "; ".join(
                f"{impact}: {', '.join(rules)}" for impact, rules in by_impact.items()
            )
            lines.append(f"{name} @{width}: {moderate} moderate — {listed}")
    total = ", ".join(f"{n} {impact}" for impact, n in sorted(counts.items())) or "nothing"
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_sep("-", f"axe-core on {len(found)} page openings: {total}")
        for line in lines:
            reporter.write_line(line)


@pytest.mark.parametrize("width", AXE_WIDTHS)
@pytest.mark.parametrize("name", PAGES)
def test_axe_finds_nothing_serious(measure, axe_summary, name, width):
    measures = measure(name, width)
    violations = measures.violations or []
    axe_summary[(name, width)] = violations
    moderate = [v for v in violations if v["impact"] == "moderate"]
    print(
        f"{name} @{width}: {len(moderate)} moderate axe finding(s)"
        + "".join(f"\n  {v['id']} ×{len(v['nodes'])}: {v['help']}" for v in moderate)
    )
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    if blocking:
        details = "\n".join(
            f"  [{v['impact']}] {v['id']}: {v['help']} ({len(v['nodes'])} element(s))\n"
            + "\n".join(
                f"      {' > '.join(map(str, n['target']))}  {n['html'][:120]}"
                for n in v["nodes"][:5]
            )
            for v in blocking
        )
        pytest.fail(f"{name} at {width} px ({measures.visit.url}):\n{details}", pytrace=False)
