"""The built-in test identity provider (`/dev/idp`): a demo student signs in through a real
AuthnRequest and a signed response, is matched once, and goes straight in the next time."""

import datetime as dt
import re
from html import unescape
from urllib.parse import urlsplit

from sqlalchemy import select

from campaigns.shared.models import Learner
from sso import devidp
from tests.journey_helpers import school


def _path(url):
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _fields(html):
    return {k: unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', html)}


def _sign_in_as(client, person):
    login = client.get("/sso/saml/gar-demo/login")
    assert login.status_code == 302 and "/dev/idp/sso?SAMLRequest=" in login.headers["Location"]
    chooser = client.get(_path(login.headers["Location"]))
    assert chooser.status_code == 200 and "Qui êtes-vous" in chooser.get_data(as_text=True)
    fields = _fields(chooser.get_data(as_text=True))
    posted = client.post(
        "/dev/idp/sso",
        data={"SAMLRequest": fields["SAMLRequest"], "RelayState": fields["RelayState"],
              "person": person},
    )  # fmt: skip
    html = posted.get_data(as_text=True)
    action = re.search(r'<form method="post" action="([^"]+)" data-autosubmit>', html).group(1)
    response = _fields(html)
    return client.post(_path(action), data=response)


def test_a_demo_student_signs_in_through_the_test_idp(app, db_session, tmp_path):
    app.instance_path = str(tmp_path)
    organization, _ = school(db_session, uai="0999999Z")
    db_session.add(
        Learner(
            organization_id=organization.id, first_name="Noah", last_name="Lefèvre",
            birthdate=dt.date(2011, 1, 9), division="4e B",
        )
    )  # fmt: skip
    devidp.register_demo_idp(db_session, organization, "http://127.0.0.1:5000", str(tmp_path))
    devidp.register_demo_idp(db_session, organization, "http://127.0.0.1:5000", str(tmp_path))
    db_session.commit()
    client = app.test_client()
    assert client.get("/dev/idp").status_code == 200
    metadata = client.get("/dev/idp/metadata.xml").get_data(as_text=True)
    assert 'entityID="http://127.0.0.1:5000/dev/idp"' in metadata

    arrived = _sign_in_as(client, "noah")
    assert arrived.status_code == 303 and arrived.headers["Location"] == "/sso/rattachement"
    page = client.get("/sso/rattachement").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    matched = client.post(
        "/sso/rattachement", data={"csrf_token": token, "day": "9", "month": "1", "year": "2011"}
    )
    assert matched.status_code == 303 and matched.headers["Location"] == "/mes-parcours"
    assert db_session.scalars(select(Learner)).one().user_id is not None

    teacher = app.test_client()
    landed = _sign_in_as(teacher, "garnier")
    assert landed.status_code == 303 and landed.headers["Location"].startswith("/orga")
