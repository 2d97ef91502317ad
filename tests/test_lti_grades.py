"""Grade passback (AGS 2.0) against a fake gradebook: every share reaches the LMS once, with the
learner's current score, whatever the LMS does meanwhile (down, slow, revoking tokens)."""

import datetime as dt
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

import jwt
import pytest
import requests
import responses
from flask import Flask
from sqlalchemy import event, func, select, update

from campaigns import connectors
from campaigns.journey import services as journey
from campaigns.shared import events
from config.app import create_app
from config.db import Database, utcnow
from config.jobs import Job, JobStatus, run_due_jobs
from config.migrations import upgrade
from config.settings import Settings
from lti_tool import ags, grades, keys
from lti_tool.http import TimeoutSession
from lti_tool.models import (
    GradeStatus,
    LtiAccessToken,
    LtiEvent,
    LtiEventKind,
    LtiLearner,
    LtiPlatform,
    LtiResourceLink,
)
from tests.journey_helpers import assessment_campaign, school, student
from tests.lti_platform import LINEITEM_SCOPE, RESULT_SCOPE, SCORE_SCOPE, FakePlatform
from tests.orga_helpers import take_test

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def _grade_listeners():
    """The listeners `create_app` subscribes, for tests that build no app."""
    already = grades.on_participation in events._listeners[connectors.Event.SHARED]
    grades.init_app(Flask("grades-test"))
    yield
    if not already:
        connectors.unsubscribe(connectors.Event.STARTED, grades.on_participation)
        connectors.unsubscribe(connectors.Event.SHARED, grades.on_participation)


# -- a course with Parcours in it -----------------------------------------------------------------


@dataclass
class World:
    lms: FakePlatform
    organization: object
    teacher: object
    campaign: object
    platform: object
    link: LtiResourceLink


def build_world(session, lms, **link_fields):
    organization, teacher = school(session)
    campaign = assessment_campaign(session, organization, teacher, multiple_sendings=True)
    platform = lms.register(session, organization)
    link = LtiResourceLink(
        deployment_id=platform.deployments[0].id,
        resource_link_id="rl-42",
        campaign_id=campaign.id,
        title="Évaluation PIX",
        **{
            "lineitem_url": lms.lineitem_url(),
            "lineitems_url": lms.lineitems_url,
            "ags_scopes": [SCORE_SCOPE, LINEITEM_SCOPE, RESULT_SCOPE],
            **link_fields,
        },
    )
    session.add(link)
    session.flush()
    return World(lms, organization, teacher, campaign, platform, link)


def lti_student(session, world, n=1):
    """A student who launched the link: their user and their LTI learner."""
    user = student(session, n)
    learner = LtiLearner(resource_link_id=world.link.id, user_id=user.id, sub=f"student-{n}")
    session.add(learner)
    session.flush()
    return user, learner


@pytest.fixture
def world(db_session):
    return build_world(db_session, FakePlatform())


class Gradebook:
    """The LMS's endpoints: token (counting requests), line items and scores, on `responses`.
    `plan` holds the outcomes of the next score posts (a status or an exception; 200 after)."""

    def __init__(self, lms, mock):
        self.lms, self.mock = lms, mock
        self.posts = []  # every score request: (url, headers, body)
        self.plan = []
        self.lock = threading.Lock()
        lms.serve(mock)
        mock.remove(responses.GET, lms.key_set_url)  # keys are the launch's business

    def serve_scores(self, lineitem_url):
        self.mock.add_callback(responses.POST, ags.scores_url(lineitem_url), callback=self._score)

    def _score(self, request):
        body = json.loads(request.body)
        with self.lock:
            self.posts.append((request.url, dict(request.headers), body))
            outcome = self.plan.pop(0) if self.plan else 200
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == 200:
            with self.lock:
                self.lms.scores.append(body)
            return 200, {}, ""
        return outcome, {"Content-Type": "text/plain"}, f"refused the score of {body['userId']}"

    def tokens(self):
        """The access tokens the platform issued, in order."""
        return [
            call.response.json()["access_token"]
            for call in self.mock.calls
            if call.request.url == self.lms.auth_token_url
        ]


@pytest.fixture
def gradebook(world):
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        book = Gradebook(world.lms, mock)
        book.serve_scores(world.lms.lineitem_url())
        yield book


def grade_jobs(session, status=None):
    query = select(Job).where(Job.kind == grades.SCORE_JOB)
    if status is not None:
        query = query.where(Job.status == status)
    return session.scalars(query.order_by(Job.id)).all()


def run_worker(bound_database, db_session):
    db_session.commit()
    report = run_due_jobs(bound_database)
    db_session.expire_all()
    return report


def make_due(db_session):
    """Time passes: the jobs waiting for a retry are due."""
    db_session.execute(update(Job).where(Job.status == JobStatus.PENDING).values(run_at=utcnow()))
    db_session.commit()


def stamp(score):
    return dt.datetime.fromisoformat(score["timestamp"].replace("Z", "+00:00"))


# -- queueing -------------------------------------------------------------------------------------


def test_a_share_queues_one_job_in_its_transaction(db_session, world):
    user, learner = lti_student(db_session, world)
    participation = take_test(db_session, world.campaign, user, share=False)
    started = grade_jobs(db_session)
    assert [j.dedupe_key for j in started] == [f"lti-score:{learner.id}"]  # queued by the start
    assert learner.grade_status is GradeStatus.PENDING

    def refuse(session, shared):
        raise RuntimeError("another connector fails")

    connectors.subscribe(connectors.Event.SHARED, refuse)
    try:
        db_session.execute(update(Job).values(status=JobStatus.DONE))  # the start was sent
        with pytest.raises(connectors.ListenerFailed):
            journey.share(db_session, participation)
        assert grade_jobs(db_session, JobStatus.PENDING) == []  # undone with the share
    finally:
        connectors.unsubscribe(connectors.Event.SHARED, refuse)
    journey.share(db_session, participation)
    waiting = grade_jobs(db_session, JobStatus.PENDING)
    assert len(waiting) == 1 and waiting[0].payload == {"lti_learner_id": learner.id}
    assert learner.grade_status is GradeStatus.PENDING


def test_only_the_learners_of_the_shared_campaign_are_queued(db_session, world):
    user, _ = lti_student(db_session, world)
    other = assessment_campaign(db_session, world.organization, world.teacher, name="Autre")
    take_test(db_session, other, user)  # the same student, another campaign: not this link's
    take_test(db_session, world.campaign, student(db_session, 2))  # not an LTI learner
    assert grade_jobs(db_session) == []


def test_a_share_without_lti_learners_costs_one_select(db_session, world, monkeypatch):
    quiet = take_test(db_session, world.campaign, student(db_session, 1), share=False)
    heard = take_test(db_session, world.campaign, student(db_session, 2), share=False)
    engine = db_session.get_bind()
    seen = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    def noop(session, participation):
        pass

    event.listen(engine, "before_cursor_execute", record)
    try:
        monkeypatch.setitem(events._listeners, connectors.Event.SHARED, (noop,))
        journey.share(db_session, quiet)
        without = list(seen)
        seen.clear()
        monkeypatch.setitem(events._listeners, connectors.Event.SHARED, (grades.on_participation,))
        journey.share(db_session, heard)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    extra = [s for s in seen if "lti_learners" in s]
    assert len(seen) == len(without) + 1
    assert len(extra) == 1 and extra[0].lstrip().upper().startswith("SELECT")
    assert grade_jobs(db_session) == []


def test_the_listeners_are_subscribed_once_however_many_apps(app, settings, bound_database):
    create_app(settings, database=bound_database)
    for kind in (connectors.Event.STARTED, connectors.Event.SHARED):
        assert events._listeners[kind].count(grades.on_participation) == 1


# -- sending --------------------------------------------------------------------------------------


def test_a_shared_result_reaches_the_gradebook(bound_database, db_session, world, gradebook):
    user, learner = lti_student(db_session, world)
    participation = take_test(db_session, world.campaign, user)  # started, then shared
    before = utcnow()
    assert run_worker(bound_database, db_session).done == 1

    [(url, headers, score)] = gradebook.posts  # one job: the share replaced the start
    lineitem = world.lms.lineitem_url()
    assert url == lineitem.replace("/lineitem?", "/lineitem/scores?")
    assert headers["Content-Type"] == "application/vnd.ims.lis.v1.score+json"
    assert headers["Authorization"] == f"Bearer {gradebook.tokens()[0]}"
    expected = float(round(participation.mastery_rate * 100, 2))
    assert score == {
        "userId": "student-1",
        "scoreGiven": expected,
        "scoreMaximum": 100,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": score["timestamp"],
    }
    assert STAMP.match(score["timestamp"]) and stamp(score) >= before - dt.timedelta(seconds=1)
    assert (learner.grade_status, learner.last_sent_score) == (GradeStatus.SENT, expected)
    assert learner.last_sent_progress == "Completed" and learner.grade_attempts == 1
    assert learner.last_error is None and learner.last_sent_at == stamp(score)

    # The token was asked with a client assertion signed by the tool's key, for AGS scopes.
    token_call = next(c for c in gradebook.mock.calls if c.request.url == world.lms.auth_token_url)
    form = {k: v[0] for k, v in parse_qs(token_call.request.body).items()}
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == f"{LINEITEM_SCOPE} {SCORE_SCOPE}"  # sorted: the cache key
    key = keys.signing_key(db_session)
    assertion = form["client_assertion"]
    assert jwt.get_unverified_header(assertion)["kid"] == key.kid
    claims = jwt.decode(
        assertion,
        jwt.PyJWK(key.public_jwk).key,
        algorithms=["RS256"],
        audience=world.lms.auth_token_url,
    )
    assert claims["iss"] == claims["sub"] == world.lms.client_id
    assert claims["exp"] - claims["iat"] <= 60 and claims["jti"]


def test_a_start_sends_progress_without_a_score(bound_database, db_session, world, gradebook):
    user, learner = lti_student(db_session, world)
    journey.join(db_session, world.campaign, user)
    run_worker(bound_database, db_session)
    take_test(db_session, world.campaign, user, answers=2, share=False)
    assert grades.resend(db_session, learner.id)
    run_worker(bound_database, db_session)

    started, answering = (body for _, _, body in gradebook.posts)
    assert "scoreGiven" not in started and "scoreMaximum" not in started
    assert (started["activityProgress"], started["gradingProgress"]) == ("Started", "Pending")
    assert (answering["activityProgress"], answering["gradingProgress"]) == (
        "InProgress",
        "Pending",
    )
    assert "scoreGiven" not in answering
    assert learner.grade_status is GradeStatus.SENT and learner.last_sent_score is None


def test_a_new_attempt_keeps_the_last_score_until_the_next_share(
    bound_database, db_session, world, gradebook
):
    user, _ = lti_student(db_session, world)
    first = take_test(db_session, world.campaign, user, success=0.3, seed=1)
    run_worker(bound_database, db_session)
    first.shared_at = utcnow() - journey.RETRY_AFTER - dt.timedelta(minutes=1)
    db_session.flush()
    journey.retry(db_session, first, world.campaign, reset=True)  # a new participation starts
    run_worker(bound_database, db_session)
    second = take_test(db_session, world.campaign, user, success=0.9, seed=2)
    run_worker(bound_database, db_session)

    shared, retrying, reshared = (body for _, _, body in gradebook.posts)
    old = float(round(first.mastery_rate * 100, 2))
    assert shared["scoreGiven"] == retrying["scoreGiven"] == old
    assert retrying["activityProgress"] == "Started"
    assert reshared["scoreGiven"] == float(round(second.mastery_rate * 100, 2))
    assert reshared["activityProgress"] == "Completed"
    # Each newer than the last at Moodle's one-second granularity (else it answers 409).
    seconds = [int(stamp(body).timestamp()) for body in (shared, retrying, reshared)]
    assert seconds[0] < seconds[1] < seconds[2]


def without_line_item(world, gradebook, lineitems_url=None):
    """The launch gave no line item, only the container."""
    world.link.lineitem_url = None
    world.link.lineitems_url = lineitems_url or world.lms.lineitems_url
    gradebook.mock.remove(responses.POST, ags.scores_url(world.lms.lineitem_url()))


def test_the_line_item_is_found_across_pages(bound_database, db_session, world, gradebook):
    lms = gradebook.lms
    container = f"{lms.issuer}/mod/lti/services.php/2/LineItems?type_id=1"
    without_line_item(world, gradebook, container)
    user, _ = lti_student(db_session, world)
    found = f"{lms.issuer}/mod/lti/services.php/2/LineItems/9/LineItem?type_id=1"
    second_page = f"{lms.issuer}/mod/lti/services.php/2/LineItems?type_id=1&Page=2&Tag=parcours"
    gradebook.mock.get(
        f"{container}&resource_link_id=rl-42&tag=parcours",
        json=[{"id": f"{lms.issuer}/other", "resourceLinkId": "rl-41", "tag": "parcours"}],
        headers={"Link": f'<{second_page}>; rel="next"'},
    )
    gradebook.mock.get(
        second_page,
        json=[
            {"id": found, "resourceLinkId": "rl-42", "tag": "parcours", "scoreMaximum": 100},
        ],
    )
    gradebook.serve_scores(found)
    take_test(db_session, world.campaign, user)
    run_worker(bound_database, db_session)

    assert [url for url, _, _ in gradebook.posts] == [
        f"{lms.issuer}/mod/lti/services.php/2/LineItems/9/LineItem/scores?type_id=1"
    ]
    assert world.link.lineitem_url == found
    accept = [c.request.headers["Accept"] for c in gradebook.mock.calls if "Page" in c.request.url]
    assert accept == ["application/vnd.ims.lis.v2.lineitemcontainer+json"]


def test_a_missing_line_item_is_created_once_and_kept(bound_database, db_session, world, gradebook):
    lms = gradebook.lms
    without_line_item(world, gradebook)
    user, learner = lti_student(db_session, world)
    search = gradebook.mock.get(f"{lms.lineitems_url}&resource_link_id=rl-42&tag=parcours", json=[])
    created = lms.lineitem_url(12)
    creation = gradebook.mock.post(lms.lineitems_url, status=201, json={"id": created})
    gradebook.serve_scores(created)
    gradebook.plan = [500]  # the first score fails after the line item was created
    take_test(db_session, world.campaign, user)
    run_worker(bound_database, db_session)
    make_due(db_session)
    run_worker(bound_database, db_session)

    assert (search.call_count, creation.call_count) == (1, 1)  # no second column
    item = json.loads(creation.calls[0].request.body)
    assert item == {
        "scoreMaximum": 100,
        "label": world.campaign.title,
        "resourceId": world.campaign.code,
        "resourceLinkId": "rl-42",
        "tag": "parcours",
    }
    assert creation.calls[0].request.headers["Content-Type"] == (
        "application/vnd.ims.lis.v2.lineitem+json"
    )
    assert world.link.lineitem_url == created
    assert len(lms.scores) == 1 and learner.grade_status is GradeStatus.SENT


def test_one_token_serves_every_score_until_it_expires(
    bound_database, db_session, world, gradebook
):
    learners = []
    for n in (1, 2, 3):
        user, learner = lti_student(db_session, world, n)
        take_test(db_session, world.campaign, user, seed=n)
        learners.append(learner)
    assert run_worker(bound_database, db_session).done == 3
    assert len(world.lms.scores) == 3 and world.lms.token_requests == 1
    cached = db_session.scalars(select(LtiAccessToken)).one()
    assert cached.scopes == f"{LINEITEM_SCOPE} {SCORE_SCOPE}"
    assert cached.token == gradebook.tokens()[0]

    assert grades.resend(db_session, learners[0].id)
    run_worker(bound_database, db_session)
    assert world.lms.token_requests == 1  # still cached, for every worker
    cached.expires_at = utcnow() + dt.timedelta(seconds=30)  # about to expire: not used
    assert grades.resend(db_session, learners[1].id)
    run_worker(bound_database, db_session)
    assert world.lms.token_requests == 2 and len(world.lms.scores) == 5


def test_a_refused_token_is_replaced_once(bound_database, db_session, world, gradebook):
    user, learner = lti_student(db_session, world)
    gradebook.plan = [401]  # the platform forgot the token (a restart)
    take_test(db_session, world.campaign, user)
    assert run_worker(bound_database, db_session).done == 1
    first, second = gradebook.tokens()
    assert [h["Authorization"] for _, h, _ in gradebook.posts] == [
        f"Bearer {first}",
        f"Bearer {second}",
    ]
    assert learner.grade_status is GradeStatus.SENT and len(world.lms.scores) == 1

    gradebook.plan = [401, 401]  # refused again with a new token: retrying cannot help
    assert grades.resend(db_session, learner.id)
    assert run_worker(bound_database, db_session).failed == 1
    assert world.lms.token_requests == 3 and learner.grade_status is GradeStatus.FAILED


@pytest.mark.parametrize(
    "failure",
    [
        500,
        503,
        429,
        409,
        requests.exceptions.ConnectTimeout(),
        requests.exceptions.ConnectionError(),
    ],
    ids=["500", "503", "429", "409", "timeout", "refused"],
)
def test_an_lms_down_then_back_loses_no_grade_and_gets_it_once(
    bound_database, db_session, world, gradebook, failure
):
    user, learner = lti_student(db_session, world)
    gradebook.plan = [failure]
    take_test(db_session, world.campaign, user)
    assert run_worker(bound_database, db_session).retried == 1
    [job] = grade_jobs(db_session)
    assert job.status is JobStatus.PENDING and job.run_at > utcnow()
    assert learner.grade_status is GradeStatus.PENDING and learner.grade_attempts == 1
    assert learner.last_error and "token" not in learner.last_error.lower()
    assert run_worker(bound_database, db_session).total == 0  # not due yet

    make_due(db_session)
    assert run_worker(bound_database, db_session).done == 1
    assert len(gradebook.posts) == 2 and len(world.lms.scores) == 1
    assert (learner.grade_status, learner.grade_attempts) == (GradeStatus.SENT, 2)
    assert learner.last_error is None
    assert run_worker(bound_database, db_session).total == 0
    assert world.lms.token_requests == 1


def test_exhausted_retries_mark_the_learner_failed(bound_database, db_session, world, gradebook):
    user, learner = lti_student(db_session, world)
    gradebook.plan = [500, 500]
    take_test(db_session, world.campaign, user)
    grade_jobs(db_session)[0].max_attempts = 2
    run_worker(bound_database, db_session)
    assert learner.grade_status is GradeStatus.PENDING
    make_due(db_session)
    assert run_worker(bound_database, db_session).failed == 1
    assert grade_jobs(db_session)[0].status is JobStatus.FAILED
    assert learner.grade_status is GradeStatus.FAILED and "HTTP 500" in learner.last_error
    assert db_session.scalar(select(func.count()).select_from(LtiEvent)) == 1


def test_a_refused_score_fails_at_once_and_says_so_without_personal_data(
    bound_database, db_session, world, gradebook
):
    user, learner = lti_student(db_session, world)
    gradebook.plan = [400]
    take_test(db_session, world.campaign, user)
    assert run_worker(bound_database, db_session).failed == 1
    assert len(gradebook.posts) == 1
    assert grade_jobs(db_session)[0].status is JobStatus.FAILED
    assert learner.grade_status is GradeStatus.FAILED and learner.grade_attempts == 1
    reference = connectors.identity_ref(world.lms.issuer, "student-1")
    assert "HTTP 400" in learner.last_error and reference in learner.last_error
    failed = db_session.scalars(select(LtiEvent)).one()
    assert (failed.kind, failed.platform_id) == (LtiEventKind.GRADE_FAILED, world.platform.id)
    assert reference in failed.summary and "rl-42" in failed.summary
    token = gradebook.tokens()[0]
    for text in (failed.summary, learner.last_error, grade_jobs(db_session)[0].last_error):
        assert "student-1" not in text and token not in text


def test_resend_queues_a_failed_grade_again(bound_database, db_session, world, gradebook):
    user, learner = lti_student(db_session, world)
    gradebook.plan = [403]
    take_test(db_session, world.campaign, user)
    run_worker(bound_database, db_session)
    assert learner.grade_status is GradeStatus.FAILED

    assert grades.resend(db_session, learner.id)  # "renvoyer", once the LMS is fixed
    assert learner.grade_status is GradeStatus.PENDING
    assert len(grade_jobs(db_session, JobStatus.PENDING)) == 1
    assert run_worker(bound_database, db_session).done == 1
    assert learner.grade_status is GradeStatus.SENT and len(world.lms.scores) == 1
    assert not grades.resend(db_session, learner.id + 1000)


# -- several processes ----------------------------------------------------------------------------


def scratch(scratch_databases, label):
    database = Database(Settings(database_url=scratch_databases.new(label)))
    upgrade(database)
    return database


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="concurrent workers are PostgreSQL's"
)
def test_two_workers_never_send_a_grade_twice(scratch_databases):
    database = scratch(scratch_databases, "grades")
    lms = FakePlatform()
    try:
        with database.session() as session, session.begin():
            world = build_world(session, lms)
            for n in range(1, 9):
                user, _ = lti_student(session, world, n)
                take_test(session, world.campaign, user, seed=n)
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            book = Gradebook(lms, mock)
            book.serve_scores(lms.lineitem_url())
            start = threading.Barrier(2, timeout=10)

            def work(name):
                start.wait()
                run_due_jobs(database, worker=name)

            threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        assert sorted(score["userId"] for score in lms.scores) == [
            f"student-{n}" for n in range(1, 9)
        ]
        assert len(book.posts) == 8
        with database.session() as session:
            assert {j.status for j in grade_jobs(session)} == {JobStatus.DONE}
            statuses = session.scalars(select(LtiLearner.grade_status)).all()
            assert set(statuses) == {GradeStatus.SENT}
    finally:
        database.dispose()


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="concurrent workers are PostgreSQL's"
)
def test_workers_asking_for_a_token_together_make_one_request(scratch_databases):
    database = scratch(scratch_databases, "tokens")
    lms = FakePlatform()
    try:
        with database.session() as session, session.begin():
            platform_id = build_world(session, lms).platform.id
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            lms.serve(mock)
            answer = lms._token_response

            def slow_token(request):  # the platform takes its time: the others must wait
                time.sleep(0.3)
                return answer(request)

            mock.remove(responses.POST, lms.auth_token_url)
            mock.add_callback(responses.POST, lms.auth_token_url, callback=slow_token)
            start = threading.Barrier(4, timeout=10)
            got = []

            def ask():
                with database.session() as session:
                    platform = session.get(LtiPlatform, platform_id)
                    start.wait()
                    got.append(ags.access_token(session, TimeoutSession(), platform, SCORE_SCOPE))

            threads = [threading.Thread(target=ask) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        assert lms.token_requests == 1
        assert len(got) == 4 and len(set(got)) == 1
    finally:
        database.dispose()


def done(database):
    with database.session() as session:
        return all(j.status is JobStatus.DONE for j in grade_jobs(session))


def test_without_a_worker_sqlite_attempts_the_job_after_the_commit(scratch_databases, settings):
    database = scratch(scratch_databases, "now")
    lms = FakePlatform()
    app = create_app(settings, database=database)
    app.extensions[grades.ATTEMPT_AFTER_COMMIT] = True  # tests turn it off; the demo has it on
    sqlite = database.engine.dialect.name == "sqlite"
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            book = Gradebook(lms, mock)
            book.serve_scores(lms.lineitem_url())
            with app.app_context(), database.session() as session:
                world = build_world(session, lms)
                user, learner = lti_student(session, world)
                session.commit()
                journey.join(session, world.campaign, user)  # as "Je commence" does
                session.commit()  # returns at once: the platform is called in a thread
                learner_id = learner.id
            deadline = time.monotonic() + (15 if sqlite else 1)
            while time.monotonic() < deadline and not done(database):
                time.sleep(0.05)
            with database.session() as session:
                [job] = grade_jobs(session)
                sent = session.get(LtiLearner, learner_id)
                if sqlite:
                    assert [s["activityProgress"] for s in lms.scores] == ["Started"]
                    assert job.status is JobStatus.DONE and sent.grade_status is GradeStatus.SENT
                else:  # PostgreSQL deployments run workers: the job waits for one
                    assert lms.scores == [] and job.status is JobStatus.PENDING
            # A worker running too finds nothing left to send (or sends it, once).
            assert run_due_jobs(database).total == (0 if sqlite else 1)
            assert len(lms.scores) == 1
    finally:
        database.dispose()
