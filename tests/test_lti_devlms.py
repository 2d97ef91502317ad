"""The built-in test LMS (`/dev/lms`): deep linking and launches through real signatures, the
HTTP between tool and LMS dispatched to the same app (responses → Flask test client)."""

import re
from urllib.parse import urlsplit

import pytest
import responses
from sqlalchemy import select

from campaigns.shared.models import Participation
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


def test_deep_link_then_launch_as_a_learner(lms_app, db_session):
    app, campaign = lms_app
    browser = app.test_client()
    assert browser.get("/dev/lms").status_code == 200

    # The teacher adds an activity: deep linking through the tool's picker.
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
    page = browser.get("/dev/lms").get_data(as_text=True)
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
