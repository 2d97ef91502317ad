"""The student journey through the browser's eyes (Flask test client, forms and redirects)."""

import datetime as dt
import json
import re

import pytest
from sqlalchemy import func, select

from campaigns.journey import services as journey
from campaigns.orga import campaign_admin
from campaigns.shared.models import (
    Answer,
    CampaignType,
    ChallengeReport,
    Participation,
    ParticipationStatus,
)
from engine.answers import expected_answer
from engine.content import ChallengeType, load_pack
from tests import factories
from tests.conftest import csrf_token
from tests.journey_helpers import (
    STUDENT_PASSWORD,
    assessment_campaign,
    school,
    student,
    timed_challenge,
)

PACK = load_pack()
CHALLENGE_ID = re.compile(r'name="challenge_id" value="([^"]+)"')


@pytest.fixture
def setting(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(
        db_session, organization, teacher, landing_text="Bienvenue !\nBon courage."
    )
    db_session.commit()
    return organization, teacher, campaign


def signed_in(client, email="eleve1@example.org", next_url=None):
    """Sign in from the sign-in page (reached with `next_url`, as a link to it carries it)."""
    page = "/connexion" if next_url is None else f"/connexion?next={next_url}"
    data = {"login": email, "password": STUDENT_PASSWORD, "csrf_token": csrf_token(client, page)}
    if next_url is not None:
        data["next"] = next_url
    response = client.post("/connexion", data=data)
    assert response.status_code == 302
    return response


def start_as_student(client, db_session, campaign):
    """A registered student signs in and presses "Je commence"."""
    student(db_session)
    db_session.commit()
    signed_in(client)
    code = campaign.code
    return client.post(
        f"/campagnes/{code}/commencer",
        data={"csrf_token": csrf_token(client, f"/campagnes/{code}")},
    )


def form_for(challenge, *, right=True):
    value = expected_answer(challenge)
    if challenge.type is ChallengeType.QCM:
        chosen = value.split(",") if right else ["1"]
        return {"answer": chosen}
    if challenge.type is ChallengeType.QROCM:
        typed = json.loads(value)
        return {f"field-{k}": (v if right else "zzz") for k, v in typed.items()}
    return {"answer": value if right else "zzzzz" if challenge.type is ChallengeType.QROC else "99"}


def current(client, code):
    page = client.get(f"/campagnes/{code}/evaluation")
    if page.status_code == 302:
        return None, page
    match = CHALLENGE_ID.search(page.get_data(as_text=True))
    return PACK.challenge_by_id[match.group(1)], page


def answer(client, code, challenge, *, right=True, action="valider"):
    data = {
        "csrf_token": csrf_token(client, f"/campagnes/{code}/evaluation"),
        "challenge_id": challenge.id,
        "action": action,
    }
    data.update(form_for(challenge, right=right))
    return client.post(f"/campagnes/{code}/evaluation", data=data)


def test_unknown_and_malformed_codes_get_a_clear_message(client, setting):
    assert client.get("/campagnes/ZZZZZZ999").status_code == 404
    token = csrf_token(client, "/campagnes")
    bad = client.post("/campagnes", data={"code": "nope", "csrf_token": token})
    assert bad.status_code == 400
    assert "Ce code ne correspond à aucun parcours" in bad.get_data(as_text=True)


def test_a_typed_code_leads_to_the_landing_page(client, setting):
    _, _, campaign = setting
    token = csrf_token(client, "/campagnes")
    response = client.post(
        "/campagnes",
        data={
            "code": campaign.code.lower()[:4] + " " + campaign.code.lower()[4:],
            "csrf_token": token,
        },
    )
    assert response.headers["Location"] == f"/campagnes/{campaign.code}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Commencez votre parcours" in page and "Je commence" in page
    assert "Bienvenue\u202f!\nBon courage." in page  # French spacing: "!" never starts a line
    assert "que si vous choisissez de les envoyer" in page


def test_guessing_codes_is_rate_limited(client, setting):
    from campaigns.journey.views import CODE_GUESSES

    token = csrf_token(client, "/campagnes")
    allowed = CODE_GUESSES.max_hits
    statuses = [
        client.post("/campagnes", data={"code": f"ABCDEF{n:03d}", "csrf_token": token}).status_code
        for n in range(allowed + 1)
    ]
    assert statuses[:allowed] == [400] * allowed and statuses[allowed] == 429


def test_an_archived_campaign_is_closed(client, setting, db_session):
    _, _, campaign = setting
    campaign.archived_at = dt.datetime.now(dt.UTC)
    db_session.commit()
    assert client.get(f"/campagnes/{campaign.code}").status_code == 410


def test_a_new_student_signs_up_reads_the_rules_and_answers(client, setting):
    _, _, campaign = setting
    code = campaign.code
    start = client.post(
        f"/campagnes/{code}/commencer",
        data={"csrf_token": csrf_token(client, f"/campagnes/{code}")},
    )
    assert start.headers["Location"].startswith("/inscription?next=")
    token = csrf_token(client, start.headers["Location"])
    refused = client.post(
        "/inscription",
        data={
            "first_name": "Léa",
            "last_name": "",
            "email": "x",
            "password": "a",
            "csrf_token": token,
        },
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    for message in (
        "Votre nom est obligatoire.",
        "n’est pas valide",
        "Au moins 8 caractères",
        "conditions d’utilisation",
    ):
        assert message in page
    signed = client.post(
        "/inscription",
        data={
            "first_name": "Léa",
            "last_name": "Martin",
            "email": "lea@example.org",
            "password": "Secret-Lea-2026",
            "cgu": "on",
            "next": f"/campagnes/{code}",
            "csrf_token": token,
        },
    )
    assert signed.headers["Location"] == f"/campagnes/{code}"
    # Back on the campaign's page, the student goes on into it: no second "Je commence".
    back = client.get(signed.headers["Location"])
    assert back.headers["Location"] == f"/campagnes/{code}/regles/1"
    for page_number in range(1, 5):
        assert client.get(f"/campagnes/{code}/regles/{page_number}").status_code == 200
    challenge, page = current(client, code)
    text = page.get_data(as_text=True)
    assert (
        "Je passe" in text
        and "Je valide" in text
        and "Signaler un problème" in text
        and "1/5" in text
    )
    assert answer(client, code, challenge).status_code == 302


def test_the_whole_test_with_checkpoints_results_and_sharing(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    code = campaign.code
    checkpoints = 0
    for n in range(200):
        challenge, _page = current(client, code)
        if challenge is None:
            break
        # Reloading shows the same question.
        assert current(client, code)[0].id == challenge.id
        response = answer(client, code, challenge, right=n % 4 != 0)
        if "/checkpoint" in response.headers["Location"]:
            checkpoints += 1
            summary = client.get(response.headers["Location"]).get_data(as_text=True)
            assert "Vos réponses" in summary and "Réponses et tutos" in summary
    assert checkpoints >= 2
    results = client.get(f"/campagnes/{code}/resultats").get_data(as_text=True)
    assert "Vous maîtrisez" in results and "J’envoie mes résultats" in results
    token = csrf_token(client, f"/campagnes/{code}/resultats")
    assert client.post(f"/campagnes/{code}/envoi", data={"csrf_token": token}).status_code == 302
    assert (
        client.post(f"/campagnes/{code}/envoi", data={"csrf_token": token}).status_code == 302
    )  # idempotent
    participation = db_session.scalars(select(Participation)).one()
    db_session.refresh(participation)
    assert participation.status is ParticipationStatus.SHARED and participation.shared_results
    assert "Vos résultats ont été envoyés" in client.get(f"/campagnes/{code}/resultats").get_data(
        as_text=True
    )


def test_double_submission_and_stale_questions(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    code = campaign.code
    challenge, _ = current(client, code)
    answer(client, code, challenge)
    answer(client, code, challenge)  # the same form sent twice
    assert db_session.scalar(select(func.count()).select_from(Answer)) == 1
    other = next(c for c in PACK.challenges if c.id != challenge.id and c.type is ChallengeType.QCU)
    tampered = answer(client, code, other)
    assert tampered.headers["Location"] == f"/campagnes/{code}/evaluation"
    assert db_session.scalar(select(func.count()).select_from(Answer)) == 1


def test_skipping_and_reporting(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    code = campaign.code
    challenge, _ = current(client, code)
    token = csrf_token(client, f"/campagnes/{code}/evaluation")
    client.post(
        f"/campagnes/{code}/signalement",
        data={
            "csrf_token": token,
            "challenge_id": challenge.id,
            "category": "consigne",
            "comment": "Ambiguë",
        },
    )
    assert db_session.scalar(select(ChallengeReport.comment)) == "Ambiguë"
    client.post(
        f"/campagnes/{code}/evaluation",
        data={"csrf_token": token, "challenge_id": challenge.id, "action": "passer"},
    )
    assert db_session.scalar(select(Answer.result)).value == "skipped"


def test_another_students_test_is_out_of_reach(client, setting, db_session):
    _, _, campaign = setting
    first, second = student(db_session, 1), student(db_session, 2)
    participation = journey.join(db_session, campaign, first)
    journey.open_assessment(db_session, participation)
    db_session.commit()
    signed_in(client, second.email)
    code = campaign.code
    assert client.get(f"/campagnes/{code}/evaluation").status_code == 404
    assert client.get(f"/campagnes/{code}/resultats").status_code == 404
    token = csrf_token(client, f"/campagnes/{code}")
    assert client.post(f"/campagnes/{code}/envoi", data={"csrf_token": token}).status_code == 404


def test_the_external_identifier_is_asked_when_the_campaign_wants_it(client, db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(
        db_session, organization, teacher, external_id_label="Numéro d’élève"
    )
    start = start_as_student(client, db_session, campaign)
    code = campaign.code
    assert start.headers["Location"] == f"/campagnes/{code}/identifiant"
    token = csrf_token(client, start.headers["Location"])
    assert (
        client.post(
            start.headers["Location"], data={"csrf_token": token, "external_id": " "}
        ).status_code
        == 400
    )
    client.post(start.headers["Location"], data={"csrf_token": token, "external_id": "E-1234"})
    assert db_session.scalar(select(Participation.participant_external_id)) == "E-1234"


def test_a_profiles_collection_asks_nothing_and_sends_the_profile(client, db_session):
    organization, teacher = school(db_session)
    campaign = campaign_admin.create_campaign(
        db_session,
        organization=organization,
        creator=teacher,
        name="Profils",
        type=CampaignType.PROFILES_COLLECTION,
    )
    start = start_as_student(client, db_session, campaign)
    code = campaign.code
    assert start.headers["Location"] == f"/campagnes/{code}/profil"
    page = client.get(f"/campagnes/{code}/profil").get_data(as_text=True)
    assert "/ 1024" in page and page.count('class="card"') == 16
    client.post(
        f"/campagnes/{code}/envoi",
        data={"csrf_token": csrf_token(client, f"/campagnes/{code}/profil")},
    )
    participation = db_session.scalars(select(Participation)).one()
    db_session.refresh(participation)
    assert participation.status is ParticipationStatus.SHARED
    assert participation.shared_results["profile"]["pix"] == 0


def test_my_campaigns_and_profile(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    page = client.get("/mes-parcours").get_data(as_text=True)
    assert "Reprendre" in page
    assert "0 / 1024" in client.get("/mon-profil").get_data(as_text=True)


def test_student_pages_may_be_framed_and_speak_english(client, setting):
    _, _, campaign = setting
    response = client.get(f"/campagnes/{campaign.code}?lang=en")
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    assert "Start your path" in response.get_data(as_text=True)


def test_enter_in_a_field_submits_the_answer_not_a_skip(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    page = client.get(f"/campagnes/{campaign.code}/evaluation").get_data(as_text=True)
    buttons = re.findall(r'<button type="submit" name="action" value="(\w+)"', page)
    assert buttons == ["valider", "passer"]  # the first submit button is the one Enter uses


def test_guessing_codes_in_the_address_is_limited_too(client, setting):
    from campaigns.journey.views import CODE_GUESSES

    _, _, campaign = setting
    statuses = [
        client.get(f"/campagnes/ABCDEF{n:03d}").status_code for n in range(CODE_GUESSES.max_hits)
    ]
    assert set(statuses) == {404}
    assert client.get(f"/campagnes/{campaign.code}").status_code == 429  # even a right one


def test_a_right_code_does_not_use_up_the_allowance(client, setting):
    _, _, campaign = setting
    for _ in range(40):
        assert client.get(f"/campagnes/{campaign.code}").status_code == 200


def test_archiving_during_the_test_stops_it(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    challenge, _ = current(client, campaign.code)
    campaign.archived_at = dt.datetime.now(dt.UTC)
    db_session.commit()
    response = answer(client, campaign.code, challenge)
    assert response.status_code == 410
    assert "archivé" in response.get_data(as_text=True)


def test_a_double_click_on_the_fifth_answer_still_shows_the_checkpoint(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    for _ in range(4):
        challenge, _ = current(client, campaign.code)
        answer(client, campaign.code, challenge)
    fifth, _ = current(client, campaign.code)
    form = {  # a double click sends the same form twice
        "csrf_token": csrf_token(client, f"/campagnes/{campaign.code}/evaluation"),
        "challenge_id": fifth.id,
        "action": "valider",
        **form_for(fifth, right=True),
    }
    first = client.post(f"/campagnes/{campaign.code}/evaluation", data=form)
    second = client.post(f"/campagnes/{campaign.code}/evaluation", data=form)
    assert "/checkpoint" in first.headers["Location"]
    assert "/checkpoint" in second.headers["Location"]


def test_results_once_sent_are_the_frozen_figures(client, setting, db_session):
    from campaigns.shared.models import KnowledgeElement

    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    while (challenge := current(client, campaign.code)[0]) is not None:
        answer(client, campaign.code, challenge)
    client.post(
        f"/campagnes/{campaign.code}/envoi",
        data={"csrf_token": csrf_token(client, f"/campagnes/{campaign.code}/resultats")},
    )
    before = client.get(f"/campagnes/{campaign.code}/resultats").get_data(as_text=True)
    for element in db_session.scalars(select(KnowledgeElement)):
        db_session.delete(element)  # knowledge changes afterwards (e.g. reset elsewhere)
    db_session.commit()
    after = client.get(f"/campagnes/{campaign.code}/resultats").get_data(as_text=True)
    assert "Vous maîtrisez 100" in before
    assert re.findall(r"<td>.*?</td>", before) == re.findall(r"<td>.*?</td>", after)


def test_a_collection_never_shows_assessment_results(client, db_session):
    organization, teacher = school(db_session)
    campaign = campaign_admin.create_campaign(
        db_session,
        organization=organization,
        creator=teacher,
        name="Profils",
        type=CampaignType.PROFILES_COLLECTION,
    )
    start_as_student(client, db_session, campaign)
    response = client.get(f"/campagnes/{campaign.code}/resultats")
    assert response.headers["Location"] == f"/campagnes/{campaign.code}/profil"


def test_odd_inputs_are_refused_cleanly(client, setting, db_session):
    _, _, campaign = setting
    token = csrf_token(client, "/inscription")
    long_name = client.post(
        "/inscription",
        data={
            "first_name": "L" * 300,
            "last_name": "M",
            "email": "l@example.org",
            "password": "Secret-Lea-2026",
            "cgu": "on",
            "csrf_token": token,
        },
    )
    assert long_name.status_code == 400
    start_as_student(client, db_session, campaign)
    challenge, _ = current(client, campaign.code)
    token = csrf_token(client, f"/campagnes/{campaign.code}/evaluation")
    odd = client.post(
        f"/campagnes/{campaign.code}/evaluation",
        data={
            "csrf_token": token,
            "challenge_id": challenge.id,
            "action": "valider",
            "answer": "²",
        },
    )
    assert odd.status_code == 302
    assert client.get(f"/campagnes/{campaign.code}/checkpoint").status_code == 200


def test_a_timed_question_shows_its_countdown(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    participation = journey.live_participation(
        db_session, campaign, db_session.scalars(select(journey.User)).all()[-1]
    )
    assessment = journey.open_assessment(db_session, participation)
    timed = timed_challenge(db_session, campaign)
    assessment.current_challenge_id = timed.id
    assessment.current_challenge_asked_at = None
    db_session.commit()
    page = client.get(f"/campagnes/{campaign.code}/evaluation").get_data(as_text=True)
    assert CHALLENGE_ID.search(page).group(1) == timed.id
    assert f'data-deadline-seconds="{timed.timer}"' in page
    assert f"<span data-seconds>{timed.timer}</span>" in page
    assert "timer.js" in page
    assert 'data-alert="Plus que %s secondes."' in page


def _gauge(page) -> int:
    return int(re.search(r'<progress id="progress" max="100" value="(\d+)"', page).group(1))


def test_a_student_who_skips_everything_is_asked_every_competence_and_told_so(client, db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher, key="tp-cycle4")
    db_session.commit()
    start_as_student(client, db_session, campaign)
    competences = set()
    while (challenge := current(client, campaign.code)[0]) is not None:
        competences.add(PACK.skill_by_id[challenge.skill_id].competence_id)
        answer(client, campaign.code, challenge, action="passer")
    profile = journey.campaign_content(db_session, campaign).index
    assert competences == {s.competence_id for s in profile.skills.values()}  # 12, not 6
    page = client.get(f"/campagnes/{campaign.code}/resultats").get_data(as_text=True)
    assert "Vous avez passé toutes les questions" in page
    assert "Vous maîtrisez" not in page and "Résultats par compétence" not in page
    assert "J’envoie mes résultats" in page


def test_skipped_questions_do_not_hide_what_was_validated_elsewhere(client, setting, db_session):
    from campaigns.shared.models import User

    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    while (challenge := current(client, campaign.code)[0]) is not None:
        answer(client, campaign.code, challenge, action="passer")
    page = client.get(f"/campagnes/{campaign.code}/resultats").get_data(as_text=True)
    assert "Vous avez passé toutes les questions" in page
    skill = next(iter(journey.campaign_content(db_session, campaign).index.skills.values()))
    user = db_session.scalars(select(User).where(User.email == "eleve1@example.org")).one()
    factories.knowledge(db_session, user.id, skill)  # validated in another campaign, later
    db_session.commit()
    page = client.get(f"/campagnes/{campaign.code}/resultats").get_data(as_text=True)
    assert "Vous maîtrisez" in page and "Vous avez passé toutes les questions" not in page


def test_an_old_answer_form_sent_after_the_end_leads_to_the_results(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    first, _ = current(client, campaign.code)
    stale = {
        "csrf_token": csrf_token(client, f"/campagnes/{campaign.code}/evaluation"),
        "challenge_id": first.id,
        "action": "valider",
        **form_for(first, right=True),
    }
    while (challenge := current(client, campaign.code)[0]) is not None:
        answer(client, campaign.code, challenge)
    again = client.post(f"/campagnes/{campaign.code}/evaluation", data=stale)
    assert again.headers["Location"].endswith("/resultats")


def test_one_answer_given_and_the_results_are_a_measure_again(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    first = True
    while (challenge := current(client, campaign.code)[0]) is not None:
        answer(client, campaign.code, challenge, action="valider" if first else "passer")
        first = False
    page = client.get(f"/campagnes/{campaign.code}/resultats").get_data(as_text=True)
    assert "Vous maîtrisez" in page and "Vous avez passé toutes les questions" not in page


def test_the_progress_bar_moves_forward_and_reaches_100_only_at_the_end(client, db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher, key="tp-cycle4")
    db_session.commit()
    start_as_student(client, db_session, campaign)
    shown = []
    right = iter([True, False, True, True, False] * 20)
    while True:
        challenge, page = current(client, campaign.code)
        if challenge is None:
            break
        shown.append(_gauge(page.get_data(as_text=True)))
        response = answer(client, campaign.code, challenge, right=next(right))
        if "/checkpoint" in response.headers["Location"]:
            checkpoint = client.get(response.headers["Location"]).get_data(as_text=True)
            shown.append(_gauge(checkpoint))
    assert shown[0] == 0 and shown == sorted(shown)
    assert shown[-1] == 100 and all(value < 100 for value in shown[:-1])
    assert len({value for value in shown if 0 < value < 100}) >= 5  # it moves, not 0 then 100
    middle = shown[len(shown) // 2]
    assert 25 <= middle <= 75


# -- one obvious next step ------------------------------------------------------------------------


def press_start(client, code):
    return client.post(
        f"/campagnes/{code}/commencer",
        data={"csrf_token": csrf_token(client, f"/campagnes/{code}")},
    )


def test_a_student_who_signs_in_after_je_commence_goes_straight_into_the_campaign(
    client, db_session
):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(
        db_session, organization, teacher, external_id_label="Numéro d’élève"
    )
    student(db_session)
    db_session.commit()
    code = campaign.code
    sign_up_page = press_start(client, code).headers["Location"]
    # "Déjà un compte ? Connectez-vous" on the sign-up page keeps the way back.
    link = re.search(r'href="(/connexion\?next=[^"]+)"', client.get(sign_up_page).get_data(True))
    assert link and link.group(1) == f"/connexion?next=/campagnes/{code}"
    signed = signed_in(client, next_url=f"/campagnes/{code}")
    assert signed.headers["Location"] == f"/campagnes/{code}"
    # On past the landing page, to what the campaign asks first (here, an identifier).
    assert client.get(f"/campagnes/{code}").headers["Location"] == f"/campagnes/{code}/identifiant"
    # Once only: the landing page shows itself again afterwards.
    assert client.get(f"/campagnes/{code}").status_code == 200


def test_signing_in_without_pressing_je_commence_joins_nothing(client, setting, db_session):
    _, _, campaign = setting
    code = campaign.code
    student(db_session)
    db_session.commit()
    # "Se connecter" in the header of a campaign's page comes back to it…
    landing = client.get(f"/campagnes/{code}").get_data(as_text=True).replace("%2F", "/")
    assert f'href="/connexion?next=/campagnes/{code}">Se connecter' in landing
    # …but only "Je commence" joins: a link that names a campaign (anyone can send one) does not.
    signed = signed_in(client, next_url=f"/campagnes/{code}")
    assert signed.headers["Location"] == f"/campagnes/{code}"
    page = client.get(f"/campagnes/{code}")
    assert page.status_code == 200 and "Je commence" in page.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Participation)) == 0


def test_je_commence_pressed_then_abandoned_is_forgotten_at_sign_out(client, setting, db_session):
    _, _, campaign = setting
    code = campaign.code
    student(db_session)
    db_session.commit()
    press_start(client, code)  # anonymous: sent to sign up, but signs in…
    signed_in(client)
    client.post("/deconnexion", data={"csrf_token": csrf_token(client, "/mes-parcours")})
    signed_in(client)  # …signs out, and in again later
    assert client.get(f"/campagnes/{code}").status_code == 200
    assert db_session.scalar(select(func.count()).select_from(Participation)) == 0


def test_je_commence_left_on_a_shared_computer_does_not_enrol_the_next_student(
    client, setting, db_session
):
    _, _, campaign = setting
    code = campaign.code
    student(db_session)
    db_session.commit()
    press_start(client, code)  # someone presses "Je commence" and walks away…
    signed_in(client)  # …the next student signs in from the sign-in page, to their own page
    assert client.get(f"/campagnes/{code}").status_code == 200  # and joins nothing
    assert db_session.scalar(select(func.count()).select_from(Participation)) == 0


def test_je_commence_is_forgotten_after_15_minutes(client, setting, db_session, monkeypatch):
    import time

    _, _, campaign = setting
    code = campaign.code
    student(db_session)
    db_session.commit()
    press_start(client, code)
    later = time.time() + 15 * 60 + 1
    monkeypatch.setattr(time, "time", lambda: later)
    signed = signed_in(client, next_url=f"/campagnes/{code}")
    assert signed.headers["Location"] == f"/campagnes/{code}"
    assert client.get(f"/campagnes/{code}").status_code == 200
    assert db_session.scalar(select(func.count()).select_from(Participation)) == 0


def test_the_landing_page_speaks_of_where_the_student_is(client, setting, db_session):
    _, _, campaign = setting
    code = campaign.code

    def landing():
        page = client.get(f"/campagnes/{code}")
        assert page.status_code == 200
        return page.get_data(as_text=True)

    new = landing()
    assert "Commencez votre parcours" in new and "Je commence" in new
    start_as_student(client, db_session, campaign)
    started = landing()
    assert "Reprenez votre parcours" in started and "Reprendre mon parcours" in started
    assert "Commencez" not in started and "Je commence" not in started
    while (challenge := current(client, code)[0]) is not None:
        answer(client, code, challenge)
    finished = landing()
    assert "Votre parcours est terminé : envoyez vos résultats" in finished
    assert f'href="/campagnes/{code}/resultats">Voir mes résultats' in finished
    assert "Commencez" not in finished and "Reprenez" not in finished
    client.post(
        f"/campagnes/{code}/envoi",
        data={"csrf_token": csrf_token(client, f"/campagnes/{code}/resultats")},
    )
    shared = landing()
    assert "Vos résultats ont été envoyés" in shared and "Voir mes résultats" in shared
    assert "que si vous choisissez de les envoyer" not in shared  # done: no longer a promise


def test_a_skipped_question_is_marked_skipped_at_the_checkpoint(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    code = campaign.code
    actions = iter(["passer", "wrong", "valider", "valider", "valider"])
    while True:
        challenge, _page = current(client, code)
        action = next(actions)
        response = answer(
            client,
            code,
            challenge,
            right=action != "wrong",
            action="passer" if action == "passer" else "valider",
        )
        if "/checkpoint" in response.headers["Location"]:
            break
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert page.count('<li class="skipped">') == 1
    assert page.count('<li class="ko">') == 1 and page.count("✘") == 1
    assert page.count('<li class="ok">') == 3
    assert '<span class="verdict">passée</span>' in page  # in words, not only a colour
    english = client.get(response.headers["Location"] + "&lang=en")
    assert '<span class="verdict">skipped</span>' in english.get_data(as_text=True)


def test_after_sending_the_results_the_next_steps_are_offered(client, setting, db_session):
    _, _, campaign = setting
    start_as_student(client, db_session, campaign)
    code = campaign.code
    while (challenge := current(client, code)[0]) is not None:
        answer(client, code, challenge)
    sent = client.post(
        f"/campagnes/{code}/envoi",
        data={"csrf_token": csrf_token(client, f"/campagnes/{code}/resultats")},
    )
    page = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert '<a class="button" href="/mes-parcours">Mes parcours</a>' in page
    assert '<a class="button secondary" href="/mon-profil">Mon profil</a>' in page


def test_after_sending_a_profile_the_next_steps_are_offered(client, db_session):
    organization, teacher = school(db_session)
    campaign = campaign_admin.create_campaign(
        db_session,
        organization=organization,
        creator=teacher,
        name="Profils",
        type=CampaignType.PROFILES_COLLECTION,
    )
    start_as_student(client, db_session, campaign)
    code = campaign.code
    assert "Envoyez votre profil" in client.get(f"/campagnes/{code}").get_data(as_text=True)
    sent = client.post(
        f"/campagnes/{code}/envoi",
        data={"csrf_token": csrf_token(client, f"/campagnes/{code}/profil")},
    )
    page = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert '<a class="button" href="/mes-parcours">Mes parcours</a>' in page
    assert '<a class="button secondary" href="/mon-profil">Mon profil</a>' in page
    landing = client.get(f"/campagnes/{code}").get_data(as_text=True)
    assert "Votre profil a été envoyé" in landing and "Voir mon profil" in landing


@pytest.mark.parametrize(
    ("password", "says", "not_says"),
    [
        ("court1A", "Ce mot de passe n’a que 7 caractères : il en faut au moins 8.", "Il manque"),
        ("longenough1", "Il manque à ce mot de passe une majuscule.", "n’a que"),
        ("LONGENOUGH", "Il manque à ce mot de passe une minuscule et un chiffre.", "n’a que"),
        ("", "Saisissez un mot de passe.", "Il manque"),
    ],
)
def test_a_refused_password_says_what_is_wrong_not_the_rules_again(
    client, password, says, not_says
):
    token = csrf_token(client, "/inscription")
    refused = client.post(
        "/inscription",
        data={
            "first_name": "Léa",
            "last_name": "Martin",
            "email": "lea@example.org",
            "password": password,
            "cgu": "on",
            "csrf_token": token,
        },
    )
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    error = re.search(r'<span id="password-error" class="field-error">([^<]*)</span>', page)
    assert error and error.group(1) == says and not_says not in error.group(1)
    help_text = re.search(r'<span id="password-help" class="help">([^<]*)</span>', page)
    assert help_text and help_text.group(1) != error.group(1)
    assert 'aria-describedby="password-help password-error"' in page


def test_the_terms_checkbox_sits_with_its_label_and_its_error(client):
    token = csrf_token(client, "/inscription")
    page = client.post(
        "/inscription",
        data={
            "first_name": "Léa",
            "last_name": "Martin",
            "email": "lea@example.org",
            "password": "Secret-Lea-2026",
            "csrf_token": token,
        },
    ).get_data(as_text=True)
    box = re.search(r'<div class="checkbox">\s*(<input[^>]*>)\s*(<label[^>]*>)', page)
    assert box, "a checkbox, then its label, in a .checkbox block"
    assert 'id="cgu"' in box.group(1) and 'for="cgu"' in box.group(2)
    assert 'aria-describedby="cgu-error"' in box.group(1)
    assert 'aria-invalid="true"' in box.group(1)
    assert re.search(r'<span id="cgu-error" class="field-error">[^<]+</span>\s*</div>', page)
