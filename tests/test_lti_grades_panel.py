"""Grades the gradebook did not take, on the campaign page of the teacher panel: listed with a
"Renvoyer" button for the organization's members only."""

from sqlalchemy import select

from campaigns.shared.models import Campaign
from config.jobs import Job, JobStatus
from lti_tool.models import GradeStatus, LtiLearner, LtiResourceLink
from tests.conftest import csrf_token
from tests.journey_helpers import student
from tests.lti_platform import FakePlatform
from tests.orga_helpers import sign_in, world


def _failed_learner(db_session, w):
    platform = FakePlatform().register(db_session, w.school)
    link = LtiResourceLink(
        deployment_id=platform.deployments[0].id,
        resource_link_id="rl-1",
        campaign_id=w.campaign.id,
        lineitem_url=FakePlatform().lineitem_url(),
        ags_scopes=["https://purl.imsglobal.org/spec/lti-ags/scope/score"],
    )
    db_session.add(link)
    db_session.flush()
    pupil = student(db_session)
    learner = LtiLearner(
        resource_link_id=link.id,
        user_id=pupil.id,
        sub="s-1",
        grade_status=GradeStatus.FAILED,
        last_error="HTTP 400: user not gradable",
    )
    db_session.add(learner)
    db_session.commit()
    return learner


def test_failed_grades_are_shown_and_resent_by_members(app, db_session):
    w = world(db_session)
    learner = _failed_learner(db_session, w)
    client = app.test_client()
    sign_in(client, w.member.email)
    path = f"/orga/campagnes/{w.campaign.id}"
    page = client.get(path).get_data(as_text=True)
    assert "Notes non reçues" in page and "user not gradable" in page and "Renvoyer" in page
    token = csrf_token(client, path)
    answer = client.post(f"/lti/notes/{learner.id}/renvoyer", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["Location"] == path
    db_session.refresh(learner)
    assert learner.grade_status is GradeStatus.PENDING
    job = db_session.scalars(select(Job).where(Job.kind == "lti.publish_score")).one()
    assert job.status is JobStatus.PENDING and job.payload == {"lti_learner_id": learner.id}
    assert "Notes non reçues" not in client.get(path).get_data(as_text=True)


def test_nobody_else_resends(app, db_session):
    w = world(db_session)
    learner = _failed_learner(db_session, w)
    outsider = app.test_client()
    sign_in(outsider, w.other_admin.email)
    token = csrf_token(outsider, f"/orga/campagnes/{w.other_campaign.id}/modifier")
    assert (
        outsider.post(f"/lti/notes/{learner.id}/renvoyer", data={"csrf_token": token}).status_code
        == 404
    )
    assert app.test_client().post(f"/lti/notes/{learner.id}/renvoyer").status_code in (400, 404)
    db_session.refresh(learner)
    assert learner.grade_status is GradeStatus.FAILED
    other_page = outsider.get(f"/orga/campagnes/{w.other_campaign.id}").get_data(as_text=True)
    assert "Notes non reçues" not in other_page
    assert db_session.get(Campaign, w.campaign.id) is not None
