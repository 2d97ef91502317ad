import datetime as dt

import pytest
from sqlalchemy import func, select

from campaigns import journey
from campaigns.models import Answer, AssessmentState, KnowledgeElement, ParticipationStatus
from engine.answers import expected_answer
from tests.journey_helpers import assessment_campaign, school, student


def take_whole_test(session, assessment, *, right=True, limit=200):
    for _ in range(limit):
        challenge = journey.current_challenge(session, assessment)
        if challenge is None:
            return
        value = expected_answer(challenge) if right else "0"
        journey.submit_answer(session, assessment, challenge_id=challenge.id, value=value)
    raise AssertionError("the test did not end")


def test_a_student_takes_the_test_and_shares(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    assert len(campaign.code) == 9 and campaign.selector == "adaptive"
    learner = student(db_session)
    participation = journey.join(db_session, campaign, learner)
    assessment = journey.open_assessment(db_session, participation)
    take_whole_test(db_session, assessment)
    assert assessment.state is AssessmentState.COMPLETED
    assert participation.status is ParticipationStatus.TO_SHARE
    journey.share(db_session, participation)
    assert participation.status is ParticipationStatus.SHARED
    assert participation.mastery_rate == 1
    frozen = dict(participation.shared_results)
    journey.share(db_session, participation)  # idempotent
    assert participation.shared_results == frozen


def test_double_submission_is_stored_once(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    assessment = journey.open_assessment(
        db_session, journey.join(db_session, campaign, student(db_session))
    )
    challenge = journey.current_challenge(db_session, assessment)
    first = journey.submit_answer(
        db_session, assessment, challenge_id=challenge.id, value=expected_answer(challenge)
    )
    again = journey.submit_answer(
        db_session, assessment, challenge_id=challenge.id, value=expected_answer(challenge)
    )
    assert not first.repeated and again.repeated
    assert db_session.scalar(select(func.count()).select_from(Answer)) == 1


def test_answering_another_question_than_the_current_one_is_refused(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    assessment = journey.open_assessment(
        db_session, journey.join(db_session, campaign, student(db_session))
    )
    journey.current_challenge(db_session, assessment)
    with pytest.raises(journey.NotCurrent):
        journey.submit_answer(db_session, assessment, challenge_id="ch-autre", value="1")


def test_a_late_answer_to_a_timed_question_counts_as_timed_out(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    assessment = journey.open_assessment(
        db_session, journey.join(db_session, campaign, student(db_session))
    )
    content = journey.campaign_content(db_session, campaign)
    timed = next(
        c for s in content.index.skills.values() for c in s.playable_challenges if c.is_timed
    )
    assessment.current_challenge_id = timed.id
    assessment.current_challenge_asked_at = dt.datetime.now(dt.UTC) - dt.timedelta(
        seconds=timed.timer + 60
    )
    result = journey.submit_answer(
        db_session, assessment, challenge_id=timed.id, value=expected_answer(timed)
    )
    assert result.result.value == "timedout"


def test_knowledge_is_reused_across_campaigns(db_session):
    organization, teacher = school(db_session)
    first = assessment_campaign(db_session, organization, teacher, name="Première")
    second = assessment_campaign(db_session, organization, teacher, name="Seconde")
    learner = student(db_session)
    take_whole_test(
        db_session, journey.open_assessment(db_session, journey.join(db_session, first, learner))
    )
    asked_before = db_session.scalar(select(func.count()).select_from(Answer))
    second_test = journey.open_assessment(db_session, journey.join(db_session, second, learner))
    assert journey.current_challenge(db_session, second_test) is None  # everything is known already
    assert db_session.scalar(select(func.count()).select_from(Answer)) == asked_before
    assert db_session.scalar(select(func.count()).select_from(KnowledgeElement)) > 0


def test_a_double_join_finds_the_same_participation(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    learner = student(db_session)
    assert (
        journey.join(db_session, campaign, learner).id
        == journey.join(db_session, campaign, learner).id
    )
