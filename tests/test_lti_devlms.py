"""The built-in test LMS (`/dev/lms`): deep linking and launches through real signatures, the
HTTP between tool and LMS dispatched to the same app (responses → Flask test client)."""

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
import responses
from sqlalchemy import select

from campaigns.shared.models import Organization, Participation
from config.app import create_app
from config.settings import Settings
from lti_tool import devlms
from lti_tool.models import LtiResourceLink
from tests.journey_helpers import assessment_campaign, school

OWN = "http://127.0.0.1:5000"


@pytest.fixture
def lms_app(app, tmp_path, db_session):
    app.instance_path = str(tmp_path)  # the test LMS keeps its state there
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    devlms.register_demo_platform(db_session, organization, OWN)
    devlms.register_demo_platform(db_session, organization, OWN)  # once only
    db_session.commit()
    server = app.test_client()  # what answers the tool's HTTP calls to 127.0.0.1

    def through_app(request):
        url = urlsplit(request.url)
        answer = server.open(
            url.path + (f"?{url.query}" if url.query else ""),
            method=request.method,
            data=request.body,
            headers={k: v for k, v in request.headers.items() if k.lower() != "content-length"},
        )
        return answer.status_code, dict(answer.headers), answer.get_data()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in (responses.GET, responses.POST):
            mock.add_callback(method, re.compile(re.escape(OWN) + r"/.*"), callback=through_app)
        yield app, campaign


def follow(client, response):
    while response.status_code in (302, 303):
        response = client.get(response.headers["Location"])
    return response


def auto_post(client, page):
    """What autosubmit.js does: post the page's form."""
    html = page.get_data(as_text=True)
    form = re.search(
        r'<form method="post" action="([^"]+)" data-autosubmit>(.*?)</form>', html, re.S
    )
    action = form.group(1)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    return client.post(urlsplit(action).path, data=fields)


def add_activity(browser, campaign):
    """The teacher adds an activity: deep linking through the tool's picker; the LMS's page."""
    login = browser.post("/dev/lms/lancer", data={"person": "durand", "kind": "deep_link"})
    auth = browser.get(_path(follow_once(browser, login)))
    assert auth.status_code == 200
    picker = follow(browser, auto_post(browser, auth))
    assert campaign.code in picker.get_data(as_text=True)
    token = re.search(r'name="t" value="([^"]+)"', picker.get_data(as_text=True)).group(1)
    back = browser.post(
        "/lti/choisir-un-parcours", data={"t": token, "action": "choose", "campaign": campaign.id}
    )
    assert back.status_code == 200
    added = auto_post(browser, back)  # the LMS stored the activity
    assert added.status_code == 200 and "Activité ajoutée" in added.get_data(as_text=True)
    assert "frame-ancestors 'self'" in added.headers["Content-Security-Policy"]  # in the iframe
    return browser.get("/dev/lms").get_data(as_text=True)


def test_deep_link_then_launch_as_a_learner(lms_app, db_session):
    app, campaign = lms_app
    browser = app.test_client()
    assert browser.get("/dev/lms").status_code == 200

    page = add_activity(browser, campaign)
    assert campaign.title in page

    # Léa launches it and lands in the test.
    student = app.test_client()
    link_id = re.search(r'name="link" value="([^"]+)"', page).group(1)
    login = student.post(
        "/dev/lms/lancer", data={"person": "lea", "kind": "resource", "link": link_id}
    )
    auth = student.get(_path(follow_once(student, login)))
    landed = auto_post(student, auth)
    assert not landed.headers["Location"].startswith("/lti/suite?")  # cookies kept: straight on
    assert (
        landed.status_code == 303 and f"/campagnes/{campaign.code}/" in landed.headers["Location"]
    )
    assert student.get(landed.headers["Location"]).status_code == 200
    link = db_session.scalars(select(LtiResourceLink)).one()
    assert link.campaign_id == campaign.id and link.lineitem_url.endswith("/dev/lms/lineitems/1")
    assert db_session.scalars(select(Participation)).one()


def _path(url):
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def follow_once(client, response):
    """The tool's login answers the LMS's redirect with one to the LMS's auth endpoint."""
    assert response.status_code == 303
    login = client.get(_path(response.headers["Location"]))
    assert login.status_code == 302
    return login.headers["Location"]


def test_the_test_lms_is_never_mounted_in_production(bound_database):
    settings = Settings(
        env="production",
        public_url="https://parcours.example",
        secret_key="a-production-secret-key-long-enough-0123456789",
        database_url=str(bound_database.engine.url.render_as_string(hide_password=False)),
        allow_sqlite=True,
    )
    app = create_app(settings, database=bound_database)
    assert not any(rule.rule.startswith("/dev/") for rule in app.url_map.iter_rules())


def test_the_demo_student_from_the_test_idp_and_the_test_lms_is_one_user(lms_app, db_session):
    """What the README shows: Noah Lefèvre signs in from the test ENT (matched with the demo
    school's list), the test LMS is declared to match learners, and his launch from it, after
    the same birth date, lands in the same account."""
    from campaigns.shared.models import AuthenticationMethod, Learner
    from lti_tool.models import LtiPlatform
    from sso import devidp
    from tests.test_saml_devidp import _sign_in_as

    app, campaign = lms_app
    organization = db_session.get(Organization, campaign.organization_id)
    db_session.add(
        Learner(
            organization_id=organization.id, first_name="Noah", last_name="Lefèvre",
            birthdate=dt.date(2011, 1, 9), division="4e B",
        )
    )  # fmt: skip
    devidp.register_demo_idp(db_session, organization, OWN, app.instance_path)
    db_session.scalars(select(LtiPlatform)).one().match_learners = True
    db_session.commit()
    page = add_activity(app.test_client(), campaign)
    link_id = re.search(r'name="link" value="([^"]+)"', page).group(1)

    ent = app.test_client()
    assert _sign_in_as(ent, "noah").headers["Location"] == "/sso/rattachement"
    form = ent.get("/sso/rattachement").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    birthdate = {"day": "9", "month": "1", "year": "2011"}
    assert ent.post("/sso/rattachement", data={"csrf_token": token, **birthdate}).status_code == 303

    student = app.test_client()
    login = student.post(
        "/dev/lms/lancer", data={"person": "noah", "kind": "resource", "link": link_id}
    )
    auth = student.get(_path(follow_once(student, login)))
    asked = auto_post(student, auth)
    assert asked.status_code == 303 and asked.headers["Location"].startswith("/lti/rapprochement")
    t = asked.headers["Location"].split("t=", 1)[1]
    landed = student.post("/lti/rapprochement", data={"t": t, **birthdate})
    assert (
        landed.status_code == 303 and f"/campagnes/{campaign.code}/" in landed.headers["Location"]
    )
    owner = db_session.scalars(select(Learner).where(Learner.first_name == "Noah")).one().user_id
    providers = db_session.scalars(
        select(AuthenticationMethod.provider).where(AuthenticationMethod.user_id == owner)
    )
    assert sorted(providers) == ["LTI", "SAML"]
    assert db_session.scalars(select(Participation)).one().user_id == owner
