"""Instructions that show a program: the question and checkpoint pages keep its indentation."""

import pytest
from markupsafe import escape
from sqlalchemy import select

from campaigns.journey import services as journey
from engine.content import text_parts
from tests.journey_helpers import assessment_campaign, school
from tests.test_journey_flow import PACK, answer, current, start_as_student


@pytest.fixture
def programming(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(
        db_session, organization, teacher, key="tp-competence-3.4", title="Programmer"
    )
    db_session.commit()
    return campaign


def asked(client, db_session, campaign, challenge_id):
    """The question page when the test asks this challenge."""
    participation = journey.live_participation(
        db_session, campaign, db_session.scalars(select(journey.User)).all()[-1]
    )
    assessment = journey.open_assessment(db_session, participation)
    assessment.current_challenge_id = challenge_id
    assessment.current_challenge_asked_at = None
    db_session.commit()
    return client.get(f"/campagnes/{campaign.code}/evaluation").get_data(as_text=True)


def code_of(challenge_id):
    return next(
        p.text for p in text_parts(PACK.challenge_by_id[challenge_id].instruction) if p.is_code
    )


def test_a_program_is_shown_in_a_pre_with_its_indentation(client, db_session, programming):
    start_as_student(client, db_session, programming)
    page = asked(client, db_session, programming, "ch-progSequence-3-a")
    assert (
        '<div class="instruction" id="instruction">Que vaut la variable total à la fin de ce '
        "programme\u202f?"
        '<pre tabindex="0"><code>total ← 10\nrépéter 4 fois :\n    total ← total − 2</code></pre>'
        "Répondez par un nombre.</div>"
    ) in page
    assert "```" not in page


def test_a_choice_question_with_a_program_is_a_group_named_by_it(client, db_session, programming):
    start_as_student(client, db_session, programming)
    page = asked(client, db_session, programming, "ch-progVariable-3-a")
    code = code_of("ch-progVariable-3-a")
    assert "    print('chaud')\nelif" in code
    assert f'<pre tabindex="0"><code>{escape(code)}</code></pre>' in page
    # A legend may not hold a <pre>: the instruction names the group instead.
    assert '<fieldset aria-labelledby="instruction">' in page and "<legend" not in page


def test_the_checkpoint_shows_the_program_again(client, db_session, programming):
    start_as_student(client, db_session, programming)
    asked(client, db_session, programming, "ch-progSequence-3-a")
    code = programming.code
    response = answer(client, code, PACK.challenge_by_id["ch-progSequence-3-a"])
    while "/checkpoint" not in response.headers["Location"]:
        challenge, _ = current(client, code)
        response = answer(client, code, challenge)
    summary = client.get(response.headers["Location"]).get_data(as_text=True)
    assert (
        f'<pre tabindex="0"><code>{escape(code_of("ch-progSequence-3-a"))}</code></pre>' in summary
    )
