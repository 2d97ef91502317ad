"""The SAML / GAR connector against a fake identity provider whose responses are minted and
signed in the test (assertion signed, then wrapped): metadata, login, every check of the
assertion consumer service, teachers, and the one-time match of a student with the learner list.
"""

import base64
import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from campaigns.shared.models import (
    AuthenticationMethod,
    Learner,
    Membership,
    MembershipRole,
    User,
)
from sso import keys, registry
from sso.models import SamlEvent, SamlEventKind, SamlSeenAssertion
from tests.conftest import csrf_token
from tests.journey_helpers import school
from tests.saml_idp import FakeIdp, student, teacher

OWN = "http://127.0.0.1:5000"
BASE = f"{OWN}/sso/saml/gar"
ACS = f"{BASE}/acs"
AUDIENCE = f"{BASE}/metadata.xml"


@pytest.fixture
def idp():
    return FakeIdp()


@pytest.fixture
def world(db_session, idp):
    organization, admin = school(db_session, uai="0750999Z")
    registry.add_idp(db_session, slug="gar", metadata=idp.metadata(), organizations=[organization])
    db_session.add(
        Learner(
            organization_id=organization.id,
            first_name="Léa",
            last_name="Martin",
            birthdate=dt.date(2011, 3, 14),
            division="2NDB",
        )
    )
    db_session.commit()
    return organization, admin


def start(client, path="/sso/saml/gar/login"):
    response = client.get(path)
    assert response.status_code == 302, response.get_data(as_text=True)
    request_id, acs, query = FakeIdp.request_of(response.headers["Location"])
    assert acs == ACS and response.headers["Location"].startswith("https://idp.gar.example/sso?")
    assert "Signature" in query and query["SigAlg"][0].endswith("rsa-sha256")
    assert query["RelayState"] == [f"{BASE}/login"]  # the declared resource URL, never read
    return request_id


def post(client, encoded):
    return client.post("/sso/saml/gar/acs", data={"SAMLResponse": encoded, "RelayState": "x"})


def login(client, idp, attributes, **changes):
    request_id = start(client)
    encoded = idp.response(
        acs=ACS, audience=AUDIENCE, attributes=attributes, in_response_to=request_id, **changes
    )
    return post(client, encoded)


def count(db_session, model):
    return db_session.scalar(select(func.count()).select_from(model))


def saml_identities(db_session):
    return db_session.scalar(
        select(func.count())
        .select_from(AuthenticationMethod)
        .where(AuthenticationMethod.provider == "SAML")
    )


def last_event(db_session):
    return db_session.scalars(select(SamlEvent).order_by(SamlEvent.id.desc())).first()


# -- metadata --------------------------------------------------------------------------------------


def test_each_idp_has_its_metadata_whose_entity_id_is_its_url(app, world):
    response = app.test_client().get("/sso/saml/gar/metadata.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/samlmetadata+xml"
    xml = response.get_data(as_text=True)
    assert f'entityID="{AUDIENCE}"' in xml
    assert f'Location="{ACS}"' in xml and 'AuthnRequestsSigned="true"' in xml
    assert "<ds:X509Certificate>" in xml or "X509Certificate" in xml
    requested = re.findall(r'<md:RequestedAttribute Name="([^"]+)"', xml)
    # only what the mapping reads (the certificate's base64 may spell anything, so names are parsed)
    assert requested == ["IDO", "UAI", "PRO", "PRE", "NOM", "DIV", "GRO", "P_MEL"]
    assert app.test_client().get("/sso/saml/inconnu/metadata.xml").status_code == 404


def _certificates(app):
    xml = app.test_client().get("/sso/saml/gar/metadata.xml").get_data(as_text=True)
    return re.findall(r"<ds:X509Certificate>([^<]+)</ds:X509Certificate>", xml)


def _signing_certificate(client):
    response = client.get("/sso/saml/gar/login")
    return response.headers["Location"]


def test_a_key_rollover_publishes_the_next_key_ahead_then_keeps_the_old_one_listed(
    app, db_session, idp, world
):
    from sso.models import SamlSpKey

    [first] = _certificates(app)
    new = keys.rotate(db_session, "127.0.0.1")
    db_session.commit()
    assert sorted(_certificates(app)) == sorted([first, keys.certificate_body(new.certificate_pem)])
    ring = keys.key_ring(db_session, "127.0.0.1")
    assert keys.certificate_body(ring.signing.certificate_pem) == first  # not yet: a week ahead
    with pytest.raises(Exception, match="under way"):
        keys.rotate(db_session, "127.0.0.1")
    assert login(app.test_client(), idp, teacher()).status_code == 303

    new.created_at -= keys.PUBLISH_AHEAD  # a week later: the new key signs, the old is listed
    db_session.commit()
    ring = keys.key_ring(db_session, "127.0.0.1")
    assert (
        ring.signing.id == new.id
        and keys.certificate_body(ring.also_listed.certificate_pem) == first
    )
    assert len(_certificates(app)) == 2
    assert login(app.test_client(), idp, teacher(IDO=["other"])).status_code == 303

    for key in db_session.scalars(select(SamlSpKey)):
        key.created_at -= keys.OVERLAP  # another week: the old key leaves the metadata
    db_session.commit()
    assert _certificates(app) == [keys.certificate_body(new.certificate_pem)]
    assert keys.purge_retired(db_session) == 1 and count(db_session, SamlSpKey) == 1


# -- teachers -------------------------------------------------------------------------------------


def test_a_teacher_lands_in_the_panel_of_their_school_as_a_member(app, db_session, idp, world):
    organization, _ = world
    client = app.test_client()
    response = login(client, idp, teacher())
    assert response.status_code == 303 and response.headers["Location"].startswith("/orga")
    user = db_session.scalars(
        select(User)
        .join(AuthenticationMethod)
        .where(AuthenticationMethod.external_id == "gar-ido-prof-42")
    ).one()
    assert (user.first_name, user.last_name) == ("Claire", "Durand")
    assert user.email == "claire.durand@ac-paris.fr" and user.email_verified_at is not None
    role = db_session.scalar(
        select(Membership.role).where(
            Membership.user_id == user.id, Membership.organization_id == organization.id
        )
    )
    assert role is MembershipRole.MEMBER  # never admin from PRO alone
    assert client.get(response.headers["Location"], follow_redirects=True).status_code == 200
    assert last_event(db_session).kind == SamlEventKind.LOGIN


# -- students -------------------------------------------------------------------------------------


def test_a_student_is_matched_once_by_birth_date_then_goes_straight_in(app, db_session, idp, world):
    client = app.test_client()
    response = login(client, idp, student())
    assert response.status_code == 303 and response.headers["Location"] == "/sso/rattachement"
    page = client.get("/sso/rattachement")
    assert page.status_code == 200 and "date de naissance" in page.get_data(as_text=True)
    token = csrf_token(client, "/sso/rattachement")
    wrong = client.post(
        "/sso/rattachement", data={"csrf_token": token, "day": "15", "month": "3", "year": "2011"}
    )
    assert wrong.status_code == 400 and "Aucun élève" in wrong.get_data(as_text=True)
    right = client.post(
        "/sso/rattachement", data={"csrf_token": token, "day": "14", "month": "03", "year": "2011"}
    )
    assert right.status_code == 303 and right.headers["Location"] == "/mes-parcours"
    learner = db_session.scalars(select(Learner)).one()
    assert learner.user_id is not None
    assert client.get("/mes-parcours").status_code == 200  # signed in

    again = app.test_client()  # the next morning: straight in, no question
    response = login(again, idp, student(PRE=["LEA"], DIV=["2NDC##2nde C"]))
    assert response.status_code == 303 and response.headers["Location"] == "/mes-parcours"
    assert count(db_session, User) == 2  # the school's admin and Léa


def test_names_are_compared_without_accents_case_or_punctuation_then_closely(
    app, db_session, idp, world
):
    organization, _ = world
    db_session.add(
        Learner(
            organization_id=organization.id,
            first_name="Jean-Noël",
            last_name="O'Brien",
            birthdate=dt.date(2010, 5, 2),
        )
    )
    db_session.commit()
    client = app.test_client()
    login(client, idp, student(IDO=["ido-jn"], PRE=["Jean Noel"], NOM=["OBRIEN"]))
    token = csrf_token(client, "/sso/rattachement")
    linked = client.post(
        "/sso/rattachement", data={"csrf_token": token, "day": "2", "month": "5", "year": "2010"}
    )
    assert linked.status_code == 303  # "obrien" is one edit away from "o brien"


def test_two_candidates_link_nobody(app, db_session, idp, world):
    organization, _ = world
    db_session.add(
        Learner(
            organization_id=organization.id,
            first_name="Léa",
            last_name="Martin",
            birthdate=dt.date(2011, 3, 14),
        )
    )
    db_session.commit()
    client = app.test_client()
    login(client, idp, student())
    token = csrf_token(client, "/sso/rattachement")
    page = client.post(
        "/sso/rattachement", data={"csrf_token": token, "day": "14", "month": "3", "year": "2011"}
    )
    assert page.status_code == 400 and "Plusieurs élèves" in page.get_data(as_text=True)
    assert count(db_session, Learner) == 2
    assert db_session.scalar(select(func.count()).where(Learner.user_id.is_not(None))) == 0


def _match(client, day="14", month="3", year="2011"):
    token = csrf_token(client, "/sso/rattachement")
    return client.post(
        "/sso/rattachement", data={"csrf_token": token, "day": day, "month": month, "year": year}
    )


def test_a_changed_ido_re_points_the_account_of_the_matched_learner(app, db_session, idp, world):
    first = app.test_client()
    login(first, idp, student())
    assert _match(first).status_code == 303
    learner = db_session.scalars(select(Learner)).one()
    owner = learner.user_id
    busy = app.test_client()  # the old IDO signed in a moment ago: two students, not one moving
    login(busy, idp, student(IDO=["gar-ido-new-ent"]))
    assert "Aucun élève" in _match(busy).get_data(as_text=True)
    method = db_session.scalars(
        select(AuthenticationMethod).where(AuthenticationMethod.user_id == owner)
    ).one()
    method.last_used_at -= dt.timedelta(days=2)  # the old IDO fell silent: the ENT changed
    db_session.commit()
    moved = app.test_client()  # the school moved to another ENT: a new IDO, the same student
    response = login(moved, idp, student(IDO=["gar-ido-new-ent"]))
    assert response.headers["Location"] == "/sso/rattachement"
    assert _match(moved).status_code == 303
    ids = db_session.scalars(
        select(AuthenticationMethod.external_id).where(AuthenticationMethod.user_id == owner)
    ).all()
    assert ids == ["gar-ido-new-ent"]  # one account, its identity moved
    assert count(db_session, User) == 2
    again = app.test_client()
    assert (
        login(again, idp, student(IDO=["gar-ido-new-ent"])).headers["Location"] == "/mes-parcours"
    )


def test_a_learner_linked_to_an_account_of_another_kind_is_refused(app, db_session, idp, world):
    _, admin = world
    learner = db_session.scalars(select(Learner)).one()
    learner.user_id = admin.id  # e.g. an account with a password the teacher linked
    db_session.commit()
    client = app.test_client()
    login(client, idp, student())
    page = _match(client)  # answered as "nobody": the page must not confirm her birth date
    assert page.status_code == 400 and "Aucun élève" in page.get_data(as_text=True)
    assert last_event(db_session).summary == "match: learner linked elsewhere"
    assert saml_identities(db_session) == 0  # no account made


def test_an_unmatched_student_may_go_on_with_an_account_of_their_own(app, db_session, idp, world):
    client = app.test_client()
    login(client, idp, student(IDO=["ido-new"], PRE=["Inès"], NOM=["Nouvelle"]))
    page = _match(client)
    assert page.status_code == 400 and "Continuer sans" in page.get_data(as_text=True)
    assert saml_identities(db_session) == 0
    token = csrf_token(client, "/sso/rattachement")
    went = client.post("/sso/rattachement", data={"csrf_token": token, "action": "skip"})
    assert went.status_code == 303 and went.headers["Location"] == "/mes-parcours"
    assert saml_identities(db_session) == 1
    assert client.get("/mes-parcours").status_code == 200
    assert client.get("/sso/rattachement").status_code == 400  # used: nothing pending


def test_birth_date_guesses_are_limited(app, db_session, idp, world):
    client = app.test_client()
    login(client, idp, student())
    token = csrf_token(client, "/sso/rattachement")
    statuses = [
        client.post(
            "/sso/rattachement",
            data={"csrf_token": token, "day": str(day), "month": "1", "year": "2011"},
        ).status_code
        for day in range(1, 8)
    ]
    assert statuses[:5] == [400] * 5 and statuses[5:] == [429, 429]
    assert "csrf" not in statuses
    no_token = client.post("/sso/rattachement", data={"day": "14", "month": "3", "year": "2011"})
    assert no_token.status_code == 400


# -- what the ACS refuses -------------------------------------------------------------------------


def _refused(response, db_session, reason):
    assert response.status_code in (400, 403, 404, 413), response.status_code
    html = response.get_data(as_text=True)
    assert "Référence à donner au support" in html
    event = last_event(db_session)
    assert event.kind == SamlEventKind.REFUSED and event.summary.startswith(reason), event.summary
    assert saml_identities(db_session) == 0


def test_a_replayed_response_is_refused(app, db_session, idp, world):
    client = app.test_client()
    request_id = start(client)
    encoded = idp.response(
        acs=ACS, audience=AUDIENCE, attributes=teacher(), in_response_to=request_id
    )
    assert post(client, encoded).status_code == 303
    replay = post(client, encoded)
    assert replay.status_code == 400
    assert last_event(db_session).summary.startswith("unknown_request")
    elsewhere = post(app.test_client(), encoded)  # another browser: no cookie of that request
    assert elsewhere.status_code == 400
    assert last_event(db_session).summary.startswith("other_browser")
    # the same assertion in a response to a new request: the assertion id is remembered
    assertion = re.search(r'<saml:Assertion[^>]* ID="([^"]+)"', _xml(encoded)).group(1)
    request_id = start(client)
    again = idp.response(
        acs=ACS, audience=AUDIENCE, attributes=teacher(), in_response_to=request_id,
        assertion_id=assertion,
    )  # fmt: skip
    assert post(client, again).status_code == 400
    assert last_event(db_session).summary.startswith("replayed")
    assert count(db_session, SamlSeenAssertion) == 1


def _xml(encoded):
    return base64.b64decode(encoded).decode()


def test_an_unsolicited_response_is_refused_unless_allowed(app, db_session, idp, world):
    encoded = idp.response(acs=ACS, audience=AUDIENCE, attributes=teacher(), in_response_to=None)
    _refused(post(app.test_client(), encoded), db_session, "unsolicited")
    found = registry.find_idp(db_session, "gar")
    found.allow_idp_initiated = True
    db_session.commit()
    encoded = idp.response(acs=ACS, audience=AUDIENCE, attributes=teacher(), in_response_to=None)
    assert post(app.test_client(), encoded).status_code == 303


def _tampered(assertion):
    return assertion.replace("gar-ido-prof-42", "gar-ido-admin-1")


@pytest.mark.parametrize(
    ("case", "changes", "reason"),
    [
        ("altered attribute after signing", {"tamper": _tampered}, "invalid"),
        ("unsigned", {"signed": False}, "invalid"),
        ("signed by another key", {"key_name": "intruder"}, "invalid"),
        ("wrong audience", {"audience": "https://other.example/metadata.xml"}, "invalid"),
        ("wrong destination", {"destination": "https://other.example/acs"}, "invalid"),
        ("wrong recipient", {"recipient": "https://other.example/acs"}, "invalid"),
        (
            "expired",
            {"issued": dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)},
            "invalid",
        ),
        (
            "DOCTYPE bomb",
            {
                "doctype": '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
                '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            },
            "malformed",
        ),
    ],
)
def test_every_bad_response_is_refused_with_a_page_and_an_event(
    app, db_session, idp, world, case, changes, reason
):
    client = app.test_client()
    request_id = start(client)
    fields = {"audience": AUDIENCE, "attributes": teacher(), "in_response_to": request_id}
    fields.update(changes)
    encoded = idp.response(acs=ACS, **fields)
    _refused(post(client, encoded), db_session, reason)


def test_malformed_oversized_and_unknown_idp_are_clean_pages(app, db_session, idp, world):
    client = app.test_client()
    for body in ("", "%%%not base64", base64.b64encode(b"<html/>").decode()):
        response = client.post("/sso/saml/gar/acs", data={"SAMLResponse": body})
        assert response.status_code == 400
    huge = client.post("/sso/saml/gar/acs", data={"SAMLResponse": "A" * 600_000})
    assert huge.status_code == 413
    unknown = client.post("/sso/saml/inconnu/acs", data={"SAMLResponse": "x"})
    assert unknown.status_code == 404 and "Référence" in unknown.get_data(as_text=True)
    assert client.get("/sso/saml/inconnu/login").status_code == 404


def test_a_school_not_attached_to_the_idp_is_refused(app, db_session, idp, world):
    _refused(login(app.test_client(), idp, teacher(UAI=["0330001X"])), db_session, "school")


def test_profiles_other_than_students_and_teachers_are_refused(app, db_session, idp, world):
    response = login(app.test_client(), idp, teacher(PRO=["National_eta"]))
    _refused(response, db_session, "profile")


def test_the_next_page_is_kept_server_side_and_relay_state_is_never_followed(
    app, db_session, idp, world
):
    client = app.test_client()
    request_id = start(client, "/sso/saml/gar/login?next=/orga/campagnes")
    encoded = idp.response(
        acs=ACS, audience=AUDIENCE, attributes=teacher(), in_response_to=request_id
    )
    response = client.post(
        "/sso/saml/gar/acs", data={"SAMLResponse": encoded, "RelayState": "https://evil.example"}
    )
    assert response.headers["Location"] == "/orga/campagnes"
    request_id = start(client, "/sso/saml/gar/login?next=https://evil.example/")
    encoded = idp.response(
        acs=ACS, audience=AUDIENCE, attributes=teacher(), in_response_to=request_id
    )
    response = post(client, encoded)
    assert urlsplit(response.headers["Location"]).netloc == ""


# -- metadata documents ---------------------------------------------------------------------------


def test_bad_metadata_is_refused_and_a_refresh_keeps_the_last_good_copy(db_session, idp, world):
    import responses

    from campaigns.shared.errors import InvalidInput

    for document in (
        b"<html/>",
        b'<!DOCTYPE x [<!ENTITY a "b">]><x/>',
        idp.metadata(certificates=[]),
        idp.metadata(valid_until=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
    ):
        with pytest.raises(InvalidInput):
            registry.parse_metadata(document)
    found = registry.find_idp(db_session, "gar")
    found.metadata_url = "https://idp.gar.example/metadata.xml"
    good = found.metadata_xml
    import requests

    with responses.RequestsMock() as mock:
        mock.add(responses.GET, "https://idp.gar.example/metadata.xml", body=b"<broken")
        assert registry.refresh_metadata(db_session, found, requests.Session()) is False
    assert found.metadata_xml == good and "readable" in found.metadata_error
    rolled = FakeIdp(key_name="gar-idp-2")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET,
            "https://idp.gar.example/metadata.xml",
            body=idp.metadata(certificates=[idp.certificate, rolled.certificate]),
        )
        assert registry.refresh_metadata(db_session, found, requests.Session()) is True
    assert len(found.certificates) == 2 and found.metadata_error is None


def test_the_worker_forgets_spent_requests_and_expired_assertions(app, db_session, idp, world):
    from config.db import utcnow
    from sso import maintenance
    from sso.models import SamlRequest

    client = app.test_client()
    assert login(client, idp, teacher()).status_code == 303
    start(client)  # pending, kept
    assert count(db_session, SamlRequest) == 2 and count(db_session, SamlSeenAssertion) == 1
    for request in db_session.scalars(select(SamlRequest).where(SamlRequest.used_at.is_not(None))):
        request.used_at = utcnow() - dt.timedelta(days=2)
    for seen in db_session.scalars(select(SamlSeenAssertion)):
        seen.expires_at = utcnow() - dt.timedelta(seconds=1)
    db_session.commit()
    assert maintenance.purge_and_refresh(db_session) == 2  # nothing to refresh: no URL
    assert count(db_session, SamlRequest) == 1 and count(db_session, SamlSeenAssertion) == 0


def test_a_classmate_with_a_close_name_cannot_take_a_linked_account(app, db_session, idp, world):
    organization, _ = world
    db_session.add(
        Learner(
            organization_id=organization.id, first_name="Louise", last_name="Petit",
            birthdate=dt.date(2012, 6, 1),
        )
    )  # fmt: skip
    db_session.add(
        Learner(
            organization_id=organization.id, first_name="Louis", last_name="Petit",
            birthdate=dt.date(2010, 2, 2),
        )
    )  # fmt: skip
    db_session.commit()
    louise = app.test_client()
    login(louise, idp, student(IDO=["ido-louise"], PRE=["Louise"], NOM=["Petit"]))
    assert _match(louise, "1", "6", "2012").status_code == 303
    method = db_session.scalars(
        select(AuthenticationMethod).where(AuthenticationMethod.external_id == "ido-louise")
    ).one()
    method.last_used_at -= dt.timedelta(days=30)
    db_session.commit()
    louis = app.test_client()  # her brother types her birth date
    login(louis, idp, student(IDO=["ido-louis"], PRE=["Louis"], NOM=["Petit"]))
    page = _match(louis, "1", "6", "2012")
    assert page.status_code == 400 and "Aucun élève" in page.get_data(as_text=True)
    assert method.external_id == "ido-louise"  # untouched
    assert _match(louis, "2", "2", "2010").status_code == 303  # his own


def test_a_student_arriving_on_a_shared_computer_signs_the_previous_user_out(
    app, db_session, idp, world
):
    client = app.test_client()
    assert login(client, idp, teacher()).status_code == 303
    assert client.get("/mon-compte").status_code == 200  # the teacher is signed in
    login(client, idp, student())  # a student on the same computer, not matched yet
    account = client.get("/mon-compte")
    assert account.status_code == 302 and "connexion" in account.headers["Location"]


def test_assertion_ids_are_kept_until_the_assertion_could_no_longer_be_accepted(
    app, db_session, idp, world
):
    login(app.test_client(), idp, teacher(), lifetime=dt.timedelta(hours=3))
    seen = db_session.scalars(select(SamlSeenAssertion)).one()
    assert seen.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)


def test_schools_served_by_the_gar_point_students_to_their_ent(app, db_session, idp, world):
    from html import unescape

    from tests.journey_helpers import assessment_campaign

    organization, admin = world
    assert organization.uses_gar  # attached to an active GAR IdP: no direct link in the panel
    campaign = assessment_campaign(db_session, organization, admin)
    db_session.commit()
    visitor = app.test_client()
    page = visitor.get(f"/campagnes/{campaign.code}").get_data(as_text=True)
    assert "Médiacentre" in page and "Je n’ai pas d’ENT" in page
    entry = unescape(re.search(r'href="(/sso/saml/gar/login[^"]+)"', page).group(1))
    assert entry == f"/sso/saml/gar/login?next=/campagnes/{campaign.code}"
    request_id = start(visitor, entry)
    encoded = idp.response(
        acs=ACS, audience=AUDIENCE, attributes=teacher(), in_response_to=request_id
    )
    assert post(visitor, encoded).headers["Location"] == f"/campagnes/{campaign.code}"
    signed_in = visitor.get(f"/campagnes/{campaign.code}").get_data(as_text=True)
    assert "Je n’ai pas d’ENT" not in signed_in

    found = registry.find_idp(db_session, "gar")
    registry.update_idp(
        db_session, found, name=found.name, mapping=found.mapping,
        allow_idp_initiated=False, metadata_url=None, organizations=[],
    )  # fmt: skip
    db_session.commit()
    db_session.refresh(organization)
    assert not organization.uses_gar  # no GAR IdP serves it any more
    page = app.test_client().get(f"/campagnes/{campaign.code}").get_data(as_text=True)
    assert "Médiacentre" not in page and "Je commence" in page


def test_a_matched_student_finds_the_campaigns_of_their_school(app, db_session, idp, world):
    from tests.journey_helpers import assessment_campaign

    organization, admin = world
    campaign = assessment_campaign(db_session, organization, admin, title="Santé numérique")
    archived = assessment_campaign(db_session, organization, admin, title="Ancien parcours")
    archived.archived_at = dt.datetime.now(dt.UTC)
    db_session.commit()
    client = app.test_client()
    login(client, idp, student())
    assert _match(client).headers["Location"] == "/mes-parcours"
    page = client.get("/mes-parcours").get_data(as_text=True)
    assert "Les parcours de votre établissement" in page and "Santé numérique" in page
    assert f"/campagnes/{campaign.code}" in page and "Ancien parcours" not in page
    stranger = app.test_client()  # not on any list: only the code form
    login(stranger, idp, student(IDO=["ido-x"], PRE=["Inès"], NOM=["Nouvelle"]))
    token = csrf_token(stranger, "/sso/rattachement")
    stranger.post("/sso/rattachement", data={"csrf_token": token, "action": "skip"})
    assert "Santé numérique" not in stranger.get("/mes-parcours").get_data(as_text=True)


def test_a_teacher_of_two_schools_joins_both(app, db_session, idp, world):
    organization, _ = world
    other, _ = school(db_session, uai="0750998Y")
    found = registry.find_idp(db_session, "gar")
    registry.set_organizations(db_session, found, [organization, other])
    db_session.commit()
    login(app.test_client(), idp, teacher(UAI=["0750999Z", "0750998Y", "0330001X"]))
    user = db_session.scalars(
        select(User)
        .join(AuthenticationMethod)
        .where(AuthenticationMethod.external_id == "gar-ido-prof-42")
    ).one()
    schools = set(
        db_session.scalars(select(Membership.organization_id).where(Membership.user_id == user.id))
    )
    assert schools == {organization.id, other.id}  # not the school the IdP does not serve
