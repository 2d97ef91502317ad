import datetime as dt

import pytest
from sqlalchemy import func, select

from campaigns.journey import services as journey
from campaigns.shared.models import Answer, AssessmentState, KnowledgeElement, ParticipationStatus
from engine.answers import expected_answer
from tests.journey_helpers import assessment_campaign, school, student, timed_challenge


def take_whole_test(session, assessment, *, right=True, limit=200):
    for _ in range(limit):
        challenge = journey.current_challenge(session, assessment)
        if challenge is None:
            return
        journey.start_clock(session, assessment, challenge)  # the page was shown
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


def test_a_test_is_opened_once_and_says_who_opened_it(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    participation = journey.join(db_session, campaign, student(db_session))
    first, opened = journey.opened_assessment(db_session, participation)
    again, reopened = journey.opened_assessment(db_session, participation)
    assert (again.id, opened, reopened) == (first.id, True, False)


def test_double_submission_is_stored_once(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    assessment = journey.open_assessment(
        db_session, journey.join(db_session, campaign, student(db_session))
    )
    challenge = journey.current_challenge(db_session, assessment)
    journey.start_clock(db_session, assessment, challenge)
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
    timed = timed_challenge(db_session, campaign)
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


def test_a_timed_question_must_be_shown_before_it_is_answered(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    assessment = journey.open_assessment(
        db_session, journey.join(db_session, campaign, student(db_session))
    )
    timed = timed_challenge(db_session, campaign)
    assessment.current_challenge_id = timed.id
    with pytest.raises(journey.NotCurrent):
        journey.submit_answer(
            db_session, assessment, challenge_id=timed.id, value=expected_answer(timed)
        )
    journey.start_clock(db_session, assessment, timed)
    assert (
        journey.submit_answer(
            db_session, assessment, challenge_id=timed.id, value=expected_answer(timed)
        ).result.value
        == "ok"
    )


def test_improving_asks_again_only_failures_at_least_4_days_old(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    participation = journey.join(db_session, campaign, student(db_session))
    take_whole_test(db_session, journey.open_assessment(db_session, participation), right=False)
    assert not journey.can_improve(db_session, participation, campaign)  # failures are fresh
    with pytest.raises(journey.NotAllowed):
        journey.improve(db_session, participation)
    for element in db_session.scalars(select(KnowledgeElement)):
        element.created_at -= dt.timedelta(days=5)
    db_session.flush()
    assert journey.can_improve(db_session, participation, campaign)
    improving = journey.improve(db_session, participation)
    assert journey.current_challenge(db_session, improving) is not None


def test_a_shared_participation_can_be_taken_again_after_4_days(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher, multiple_sendings=True)
    participation = journey.join(db_session, campaign, student(db_session))
    take_whole_test(db_session, journey.open_assessment(db_session, participation), right=False)
    journey.share(db_session, participation)
    assert not journey.can_retry(participation, campaign)
    participation.shared_at -= dt.timedelta(days=4, minutes=1)
    again = journey.retry(db_session, participation, campaign, reset=True)
    assert again.id != participation.id and participation.is_improved
    assert (
        journey.current_challenge(db_session, journey.open_assessment(db_session, again))
        is not None
    )


def test_an_archived_campaign_refuses_answers_and_sharing(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    participation = journey.join(db_session, campaign, student(db_session))
    take_whole_test(db_session, journey.open_assessment(db_session, participation))
    campaign.archived_at = dt.datetime.now(dt.UTC)
    with pytest.raises(journey.NotAllowed):
        journey.share(db_session, participation)


def test_a_campaign_whose_content_is_missing_says_so(db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    campaign.content_version = "parcours-fr@1999.1.0"
    with pytest.raises(journey.ContentUnavailable):
        journey.campaign_content(db_session, campaign)
