"""LTI 1.3 launches against an in-process fake platform: OIDC login, every Security Framework
check (the certification's bad payloads), learner and instructor launches, deep linking."""

import os
import re
import threading
import time

import jwt
import pytest
import responses
from jwcrypto.jwk import JWK
from sqlalchemy import func, select

from campaigns.accounts import users
from campaigns.shared.models import (
    AuthenticationMethod,
    Campaign,
    CampaignType,
    Membership,
    MembershipRole,
    Participation,
    User,
)
from config.app import create_app
from config.db import Database, utcnow
from config.migrations import upgrade
from config.settings import Settings
from lti_tool.launch import state_cookie_name
from lti_tool.models import LtiEvent, LtiEventKind, LtiLearner, LtiResourceLink
from tests.journey_helpers import assessment_campaign, school
from tests.lti_platform import DL, INSTRUCTOR, LEARNER, LTI, NRPS, FakePlatform, query_of

OWN = "http://127.0.0.1:5000"


@pytest.fixture
def lms():
    platform = FakePlatform()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        platform.serve(mock)
        platform.mock = mock
        yield platform


@pytest.fixture
def world(db_session, lms):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    registered = lms.register(db_session, organization)
    db_session.commit()
    return organization, campaign, registered


def login(client, lms, **params):
    query = {
        "iss": lms.issuer,
        "login_hint": "opaque-user",
        "target_link_uri": f"{OWN}/lti/launch",
        "lti_message_hint": "opaque-message",
        "client_id": lms.client_id,
        **params,
    }
    response = client.get("/lti/login", query_string=query)
    assert response.status_code == 302, response.get_data(as_text=True)
    sent = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(lms.auth_login_url + "?")
    assert sent["redirect_uri"] == f"{OWN}/lti/launch" and sent["login_hint"] == "opaque-user"
    return sent["state"], sent["nonce"]


def launch(client, lms, *, body=None, sign=None, **claims):
    state, nonce = login(client, lms)
    token = (sign or lms.sign)(body(nonce) if body else lms.claims(nonce, **claims))
    return through_handoff(
        client, client.post("/lti/launch", data={"id_token": token, "state": state})
    )


def through_handoff(client, response):
    """A launch passes by /lti/suite, which sends a browser that kept our cookie on at once."""
    if response.status_code == 303 and response.headers["Location"].startswith("/lti/suite?"):
        return client.get(response.headers["Location"])
    return response


def lti_identities(db_session):
    return db_session.scalar(
        select(func.count())
        .select_from(AuthenticationMethod)
        .where(AuthenticationMethod.provider == "LTI")
    )


def count(db_session, model):
    return db_session.scalar(select(func.count()).select_from(model))


# -- learner launches -----------------------------------------------------------------------------


def test_a_learner_launches_into_the_test_without_a_password(app, db_session, lms, world):
    _, campaign, _ = world
    client = app.test_client()
    response = launch(client, lms, custom={"campaign_code": campaign.code})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/campagnes/{campaign.code}/regles/1")
    assert client.get(response.headers["Location"]).status_code == 200  # signed in
    user = db_session.scalars(
        select(User)
        .join(AuthenticationMethod)
        .where(AuthenticationMethod.external_id == "student-8f14e45f")
    ).one()
    assert (user.first_name, user.last_name, user.email) == ("Léa", "Martin", None)
    link = db_session.scalars(select(LtiResourceLink)).one()
    assert link.campaign_id == campaign.id and link.lineitem_url == lms.lineitem_url()
    assert link.context_title == "SNT 2de B" and "score" in " ".join(link.ags_scopes)
    learner = db_session.scalars(select(LtiLearner)).one()
    assert (learner.user_id, learner.sub) == (user.id, "student-8f14e45f")
    participation = db_session.scalars(select(Participation)).one()
    assert participation.user_id == user.id

    again = launch(app.test_client(), lms)  # the link remembers its campaign
    assert again.headers["Location"].endswith(f"/campagnes/{campaign.code}/evaluation")
    assert count(db_session, User) == 2  # the campaign's teacher and the student
    events = db_session.scalars(select(LtiEvent.kind)).all()
    assert events.count(LtiEventKind.LAUNCH) == 2
    assert all("student-8f14e45f" not in e for e in db_session.scalars(select(LtiEvent.summary)))


def test_an_lti_identity_is_never_merged_with_an_account_by_email(app, db_session, lms, world):
    _, campaign, _ = world
    owner = users.create_user(
        db_session,
        first_name="Léa",
        last_name="Martin",
        email="lea.martin@lycee.example",
        password="Un-mot-de-passe-1",
    )
    owner.email_verified_at = utcnow()
    db_session.commit()
    assert (
        launch(app.test_client(), lms, custom={"campaign_code": campaign.code}).status_code == 303
    )
    method = db_session.scalars(
        select(AuthenticationMethod).where(AuthenticationMethod.provider == "LTI")
    ).one()
    assert method.user_id != owner.id


@pytest.mark.parametrize(
    "variant",
    [
        {"roles": [LEARNER, "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"]},
        {"roles": ["Learner"]},
        {"roles": ["http://example.org/roles#Astronaut"]},
        {"roles": []},
        {"given_name": None, "family_name": None, "name": None},  # email only
        {"email": None},  # names only
        {"given_name": None, "family_name": None, "name": None, "email": None},
        {LTI + "context": None},
    ],
)
def test_every_valid_variant_gets_in(app, db_session, lms, world, variant):
    _, campaign, _ = world

    def body(nonce):
        claims = lms.claims(nonce, custom={"campaign_code": campaign.code})
        for key, value in variant.items():
            if key == "roles":
                claims[LTI + "roles"] = value
            elif value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        return claims

    response = launch(app.test_client(), lms, body=body)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert f"/campagnes/{campaign.code}/" in response.headers["Location"]


def test_an_anonymous_launch_is_explained(app, db_session, lms, world):
    _, campaign, _ = world
    response = launch(app.test_client(), lms, sub=None, custom={"campaign_code": campaign.code})
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "anonyme" in page and "Référence" in page
    assert lti_identities(db_session) == 0


def _without(*names):
    def body(lms, nonce):
        claims = lms.claims(nonce)
        for name in names:
            claims.pop(name, None)
        return claims

    return body


def _with(**changes):
    def body(lms, nonce):
        claims = lms.claims(nonce)
        for name, value in changes.items():
            claims[name.replace("__", "/")] = value
        return claims

    return body


def _claim(name, value):
    def body(lms, nonce):
        claims = lms.claims(nonce)
        claims[name] = value
        return claims

    return body


BAD_PAYLOADS = {
    "no kid": (None, {"kid": None}),
    "wrong kid": (None, {"kid": "not-a-platform-key"}),
    "wrong LTI version": (_claim(LTI + "version", "1.2.0"), {}),
    "no LTI version": (_without(LTI + "version"), {}),
    "missing LTI claims": (
        _without(LTI + "version", LTI + "message_type", LTI + "roles", LTI + "deployment_id"),
        {},
    ),
    "expired": (_claim("exp", int(time.time()) - 600), {}),
    "issued in the future": (_claim("iat", int(time.time()) + 600), {}),
    "no message_type": (_without(LTI + "message_type"), {}),
    "unknown message_type": (_claim(LTI + "message_type", "LtiFancyRequest"), {}),
    "no roles claim": (_without(LTI + "roles"), {}),
    "no deployment_id": (_without(LTI + "deployment_id"), {}),
    "unknown deployment_id": (_claim(LTI + "deployment_id", "999"), {}),
    "no resource_link id": (_claim(LTI + "resource_link", {"title": "x"}), {}),
    "wrong aud": (_claim("aud", "someone-else"), {}),
    "several aud without azp": (_claim("aud", ["parcours-client", "other"]), {}),
    "wrong azp": (_claim("azp", "other"), {}),
    "wrong iss": (_claim("iss", "https://evil.example"), {}),
    "wrong nonce": (_claim("nonce", "not-the-one-we-issued"), {}),
}


@pytest.mark.parametrize("case", sorted(BAD_PAYLOADS))
def test_every_bad_payload_is_refused_with_a_page_and_a_log_line(app, db_session, lms, world, case):
    make, signing = BAD_PAYLOADS[case]
    client = app.test_client()
    state, nonce = login(client, lms)
    claims = make(lms, nonce) if make else lms.claims(nonce)
    token = lms.sign(claims, **signing)
    response = client.post("/lti/launch", data={"id_token": token, "state": state})
    assert 400 <= response.status_code < 500, (case, response.status_code)
    assert "Connexion impossible" in response.get_data(as_text=True)
    assert lti_identities(db_session) == 0  # nobody signed in
    assert db_session.scalars(select(LtiEvent.kind)).all() == [LtiEventKind.REFUSED]


def test_not_a_jwt_and_a_forged_signature_are_refused(app, db_session, lms, world):
    client = app.test_client()
    state, _ = login(client, lms)
    assert (
        client.post("/lti/launch", data={"id_token": "abc.def", "state": state}).status_code == 400
    )
    state, nonce = login(client, lms)
    other = FakePlatform(key_name="attacker")
    forged = other.sign(lms.claims(nonce), kid=lms.kid)  # the platform's kid, another key
    assert client.post("/lti/launch", data={"id_token": forged, "state": state}).status_code == 400
    state, nonce = login(client, lms)
    hs256 = jwt.encode(lms.claims(nonce), "s" * 32, algorithm="HS256", headers={"kid": lms.kid})
    assert client.post("/lti/launch", data={"id_token": hs256, "state": state}).status_code == 400
    assert lti_identities(db_session) == 0


def test_a_replayed_launch_is_refused(app, db_session, lms, world):
    _, campaign, _ = world
    client = app.test_client()
    state, nonce = login(client, lms)
    token = lms.sign(lms.claims(nonce, custom={"campaign_code": campaign.code}))
    first = client.post("/lti/launch", data={"id_token": token, "state": state})
    assert first.status_code == 303
    replay = client.post("/lti/launch", data={"id_token": token, "state": state})
    assert replay.status_code == 400 and "déjà été utilisée" in replay.get_data(as_text=True)
    stranger = app.test_client()  # without the state cookie either
    assert stranger.post("/lti/launch", data={"id_token": token, "state": state}).status_code == 400
    assert stranger.post("/lti/launch", data={"id_token": token}).status_code == 400


def test_a_refused_launch_spends_its_state(app, db_session, lms, world):
    client = app.test_client()
    state, nonce = login(client, lms)
    anonymous = lms.sign(lms.claims(nonce, sub=None))
    assert (
        client.post("/lti/launch", data={"id_token": anonymous, "state": state}).status_code == 403
    )
    again = client.post("/lti/launch", data={"id_token": anonymous, "state": state})
    assert "déjà été utilisée" in again.get_data(as_text=True)


def test_a_state_from_another_browser_is_refused(app, db_session, lms, world):
    victim, attacker = app.test_client(), app.test_client()
    login(victim, lms)  # the victim's browser holds its own state cookie
    state, nonce = login(attacker, lms)
    token = lms.sign(lms.claims(nonce))
    victim.set_cookie(state_cookie_name(state), "another-state", path="/lti/")
    assert victim.post("/lti/launch", data={"id_token": token, "state": state}).status_code == 400


def test_a_rotated_platform_key_is_fetched_again_once(app, db_session, lms, world):
    _, campaign, registered = world
    assert (
        launch(app.test_client(), lms, custom={"campaign_code": campaign.code}).status_code == 303
    )
    assert launch(app.test_client(), lms).status_code == 303
    fetches = [c for c in lms.mock.calls if c.request.url == lms.key_set_url]
    assert len(fetches) == 1  # cached in the database
    registered.jwks_fetched_at = utcnow().replace(year=2020)  # long ago
    db_session.commit()
    lms.rotate_key()
    assert launch(app.test_client(), lms).status_code == 303
    assert len([c for c in lms.mock.calls if c.request.url == lms.key_set_url]) == 2


@pytest.mark.parametrize(
    "broken", [{"kty": "RSA", "e": "AQAB"}, {"kty": "oct", "k": "c2VjcmV0"}], ids=["no-n", "oct"]
)
def test_a_malformed_platform_key_is_a_refusal_not_an_error(app, lms, world, broken):
    _, campaign, _ = world
    lms.jwks = lambda: {"keys": [{**broken, "kid": lms.kid, "alg": "RS256", "use": "sig"}]}
    response = launch(app.test_client(), lms, custom={"campaign_code": campaign.code})
    assert response.status_code == 400 and "signature" in response.get_data(as_text=True)


def test_a_minute_of_clock_difference_is_tolerated(app, db_session, lms, world):
    _, campaign, _ = world
    ahead = int(time.time()) + 30
    ok = launch(app.test_client(), lms, iat=ahead, custom={"campaign_code": campaign.code})
    assert ok.status_code == 303
    assert launch(app.test_client(), lms, iat=int(time.time()) + 300).status_code == 400


def test_a_platform_that_is_down_gets_a_clear_page(app, db_session, world):
    lms = FakePlatform()
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, lms.key_set_url, status=503)
        response = launch(app.test_client(), lms)
    assert response.status_code == 502 and "ne répond pas" in response.get_data(as_text=True)


def test_links_without_a_campaign_and_archived_campaigns(app, db_session, lms, world):
    _, campaign, _ = world
    orphan = launch(app.test_client(), lms, resource_link_id="rl-new")
    assert orphan.status_code == 409 and "aucun parcours" in orphan.get_data(as_text=True)
    campaign.archived_at = utcnow()
    db_session.commit()
    archived = launch(app.test_client(), lms, custom={"campaign_code": campaign.code})
    assert archived.status_code == 410
    elsewhere = launch(app.test_client(), lms, custom={"campaign_code": "ZZZZZZ999"})
    assert elsewhere.status_code == 409


# -- login ----------------------------------------------------------------------------------------


def test_login_checks_the_platform_and_the_target(app, db_session, lms, world):
    client = app.test_client()
    assert (
        client.post(
            "/lti/login",
            data={"iss": lms.issuer, "login_hint": "u", "target_link_uri": f"{OWN}/lti/launch"},
        ).status_code
        == 302
    )  # POST, and no client_id: the issuer's only registration
    unknown = client.get(
        "/lti/login",
        query_string={
            "iss": "https://unknown.example",
            "login_hint": "u",
            "target_link_uri": f"{OWN}/lti/launch",
        },
    )
    assert unknown.status_code == 403 and "pas enregistrée" in unknown.get_data(as_text=True)
    foreign = client.get(
        "/lti/login",
        query_string={
            "iss": lms.issuer,
            "login_hint": "u",
            "target_link_uri": "https://evil.example/",
        },
    )
    assert foreign.status_code == 400
    _, _, registered = world
    registered.is_active = False
    db_session.commit()
    pending = client.get(
        "/lti/login",
        query_string={"iss": lms.issuer, "login_hint": "u", "target_link_uri": f"{OWN}/lti/launch"},
    )
    assert pending.status_code == 403 and "attente d’activation" in pending.get_data(as_text=True)


# -- instructors ----------------------------------------------------------------------------------


def test_an_instructor_lands_on_the_campaign_panel_as_a_member(app, db_session, lms, world):
    _organization, campaign, _ = world
    client = app.test_client()
    response = launch(
        client, lms, sub="teacher-1", roles=[INSTRUCTOR], custom={"campaign_code": campaign.code}
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/orga/campagnes/{campaign.id}")
    terms = client.get(response.headers["Location"])  # the panel's terms, once, first
    assert terms.status_code == 302 and terms.headers["Location"].startswith("/orga/cgu")
    assert client.get(terms.headers["Location"]).status_code == 200
    role = db_session.scalars(
        select(Membership.role)
        .join(AuthenticationMethod, AuthenticationMethod.user_id == Membership.user_id)
        .where(AuthenticationMethod.external_id == "teacher-1")
    ).one()
    assert role is MembershipRole.MEMBER


def test_an_instructor_chooses_the_campaign_of_a_new_link(app, db_session, lms, world):
    _organization, campaign, _ = world
    client = app.test_client()
    response = launch(client, lms, sub="teacher-1", roles=["Instructor"], resource_link_id="rl-9")
    assert (
        response.status_code == 303
        and "/lti/choisir-un-parcours?t=" in response.headers["Location"]
    )
    picker = client.get(response.headers["Location"])
    assert picker.status_code == 200 and campaign.code in picker.get_data(as_text=True)
    token = query_of(response.headers["Location"])["t"]
    chosen = client.post(
        "/lti/choisir-un-parcours", data={"t": token, "action": "choose", "campaign": campaign.id}
    )
    assert chosen.status_code == 303 and chosen.headers["Location"].endswith(
        f"/orga/campagnes/{campaign.id}"
    )
    student = launch(app.test_client(), lms, resource_link_id="rl-9")
    assert student.headers["Location"].endswith(f"/campagnes/{campaign.code}/regles/1")
    tampered = client.post(
        "/lti/choisir-un-parcours",
        data={"t": token + "x", "action": "choose", "campaign": campaign.id},
    )
    assert tampered.status_code == 404


# -- deep linking ---------------------------------------------------------------------------------


def _deep_link(client, lms, **claims):
    return launch(
        client,
        lms,
        message_type="LtiDeepLinkingRequest",
        sub="teacher-1",
        roles=[INSTRUCTOR],
        **claims,
    )


def test_deep_linking_returns_a_signed_resource_link_with_a_line_item(app, db_session, lms, world):
    _organization, campaign, _ = world
    client = app.test_client()
    response = _deep_link(client, lms)
    assert response.status_code == 303
    token = query_of(response.headers["Location"])["t"]
    returned = client.post(
        "/lti/choisir-un-parcours", data={"t": token, "action": "choose", "campaign": campaign.id}
    )
    assert returned.status_code == 200
    page = returned.get_data(as_text=True)
    assert f'action="{lms.issuer}/mod/lti/contentitem_return.php"' in page
    assert f"form-action 'self' {lms.issuer}" in returned.headers["Content-Security-Policy"]
    sent = page.split('name="JWT" value="', 1)[1].split('"', 1)[0]
    published = client.get("/lti/jwks.json").get_json()["keys"]
    header = jwt.get_unverified_header(sent)
    key = next(k for k in published if k["kid"] == header["kid"])
    public = JWK(**key).export_to_pem()
    claims = jwt.decode(sent, public, algorithms=["RS256"], audience=lms.issuer)
    assert claims["iss"] == lms.client_id and claims["nonce"]
    assert claims[LTI + "message_type"] == "LtiDeepLinkingResponse"
    assert claims[LTI + "deployment_id"] == lms.deployment_id and claims[LTI + "version"] == "1.3.0"
    assert claims[DL + "data"] == "opaque-platform-data"
    [item] = claims[DL + "content_items"]
    assert item["type"] == "ltiResourceLink" and item["url"] == f"{OWN}/lti/launch"
    assert item["custom"] == {"campaign_code": campaign.code}
    assert item["lineItem"] == {
        "scoreMaximum": 100,
        "label": campaign.title,
        "resourceId": campaign.code,
        "tag": "parcours",
    }
    assert LtiEventKind.DEEP_LINK in db_session.scalars(select(LtiEvent.kind)).all()


def test_deep_linking_creates_a_campaign_inline(app, db_session, lms, world):
    organization, _campaign, _ = world
    client = app.test_client()
    token = query_of(_deep_link(client, lms).headers["Location"])["t"]
    page = client.get(f"/lti/choisir-un-parcours?t={token}").get_data(as_text=True)
    profile = page.split('<option value="', 2)[2].split('"', 1)[0]
    missing = client.post(
        "/lti/choisir-un-parcours", data={"t": token, "action": "create", "name": ""}
    )
    assert missing.status_code == 400 and "Donnez un nom" in missing.get_data(as_text=True)
    created = client.post(
        "/lti/choisir-un-parcours",
        data={"t": token, "action": "create", "name": "SNT 2de B", "profile": profile},
    )
    assert created.status_code == 200 and 'name="JWT"' in created.get_data(as_text=True)
    new = db_session.scalars(select(Campaign).where(Campaign.name == "SNT 2de B")).one()
    assert new.organization_id == organization.id and new.type is CampaignType.ASSESSMENT


def test_only_teachers_deep_link(app, db_session, lms, world):
    refused = launch(app.test_client(), lms, message_type="LtiDeepLinkingRequest", roles=[LEARNER])
    assert refused.status_code == 403 and "enseignants" in refused.get_data(as_text=True)


# -- what the LMS administrator reads -------------------------------------------------------------


def test_the_tool_publishes_its_keys_and_configuration(app, db_session):
    client = app.test_client()
    keys = client.get("/lti/jwks.json").get_json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256"
    assert "d" not in keys[0]  # never the private part
    config = client.get("/lti/config.json").get_json()
    assert config["oidc_initiation_url"] == f"{OWN}/lti/login"
    assert config["target_link_uri"] == f"{OWN}/lti/launch"
    assert config["public_jwk_url"] == f"{OWN}/lti/jwks.json"
    assert {m["type"] for m in config["messages"]} == {
        "LtiResourceLinkRequest",
        "LtiDeepLinkingRequest",
    }


# -- the course roster (NRPS) ---------------------------------------------------------------------

MEMBERS_URL = (
    "https://moodle.lycee.example/mod/lti/services.php/CourseSection/3/bindings/1/memberships"
)


def test_the_campaign_page_lists_the_course_members_who_have_not_started(
    app, db_session, lms, world
):
    _organization, campaign, _ = world
    nrps = {NRPS: {"context_memberships_url": MEMBERS_URL, "service_versions": ["2.0"]}}
    # Léa launches and starts; Hugo never does.
    assert (
        launch(app.test_client(), lms, custom={"campaign_code": campaign.code}).status_code == 303
    )
    page_one = {
        "members": [
            {"user_id": "student-8f14e45f", "name": "Léa Martin", "roles": [LEARNER]},
            {"user_id": "teacher-1", "name": "Claire Durand", "roles": [INSTRUCTOR]},
        ]
    }
    page_two = {
        "members": [
            {
                "user_id": "s-2",
                "given_name": "Hugo",
                "family_name": "Bernard",
                "roles": ["Learner"],
            },
            {"user_id": "s-3", "name": "Ines Gone", "roles": [LEARNER], "status": "Inactive"},
        ]
    }
    lms.mock.add(
        responses.GET,
        MEMBERS_URL,
        json=page_one,
        headers={"Link": f'<{MEMBERS_URL}?Page=2>; rel="next"'},
        match=[responses.matchers.query_string_matcher("")],
    )
    lms.mock.add(
        responses.GET,
        f"{MEMBERS_URL}?Page=2",
        json=page_two,
        match=[responses.matchers.query_string_matcher("Page=2")],
    )
    teacher = app.test_client()
    response = launch(
        teacher,
        lms,
        sub="teacher-1",
        roles=[INSTRUCTOR],
        custom={"campaign_code": campaign.code},
        **nrps,
    )
    user = db_session.scalars(
        select(User)
        .join(AuthenticationMethod)
        .where(AuthenticationMethod.external_id == "teacher-1")
    ).one()
    user.cgu_accepted_at = utcnow()
    db_session.commit()
    page = teacher.get(response.headers["Location"]).get_data(as_text=True)
    assert "Pas encore commencé" in page and "Hugo Bernard" in page
    assert "Léa Martin" not in page.split("Pas encore commencé", 1)[1]  # she started
    assert (
        "Ines Gone" not in page and "Claire Durand" not in page.split("Pas encore commencé", 1)[1]
    )
    assert lms.token_requests == 1

    # Opened from the panel itself (no launch): no course list.
    other = app.test_client()
    assert "Pas encore commencé" not in other.get(response.headers["Location"]).get_data(
        as_text=True
    )


def test_the_campaign_page_survives_a_platform_that_does_not_list_members(
    app, db_session, lms, world
):
    _organization, campaign, _ = world
    nrps = {NRPS: {"context_memberships_url": MEMBERS_URL, "service_versions": ["2.0"]}}
    lms.mock.add(responses.GET, MEMBERS_URL, status=503)
    teacher = app.test_client()
    response = launch(
        teacher,
        lms,
        sub="teacher-1",
        roles=[INSTRUCTOR],
        custom={"campaign_code": campaign.code},
        **nrps,
    )
    user = db_session.scalars(
        select(User)
        .join(AuthenticationMethod)
        .where(AuthenticationMethod.external_id == "teacher-1")
    ).one()
    user.cgu_accepted_at = utcnow()
    db_session.commit()
    page = teacher.get(response.headers["Location"])
    assert page.status_code == 200 and "indisponible" in page.get_data(as_text=True)


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="concurrent launches are PostgreSQL's"
)
def test_a_class_of_thirty_launching_at_once_all_get_in(scratch_databases):
    """30 first launches of one resource link in the same instant: 30 accounts, one link,
    30 participations, no error (the constraints decide, the losers re-read)."""
    url = scratch_databases.new("class")
    database = Database(Settings(database_url=url))
    upgrade(database)
    lms = FakePlatform()
    try:
        with database.session() as session, session.begin():
            organization, teacher = school(session)
            code = assessment_campaign(session, organization, teacher).code
            lms.register(session, organization)
        app = create_app(
            Settings(
                database_url=url,
                secret_key="test-secret-key-that-is-long-enough-0123456789",
                public_url=OWN,
                env="development",
                testing=True,
            ),
            database=database,
        )
        start = threading.Barrier(30, timeout=30)
        outcomes: list[int] = []

        def student(n: int) -> None:
            client = app.test_client()
            state, nonce = login(client, lms)
            token = lms.sign(lms.claims(nonce, sub=f"eleve-{n}", custom={"campaign_code": code}))
            start.wait()
            answer = client.post("/lti/launch", data={"id_token": token, "state": state})
            outcomes.append(through_handoff(client, answer).status_code)

        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            lms.serve(mock)
            threads = [threading.Thread(target=student, args=(n,)) for n in range(30)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        assert outcomes == [303] * 30
        with database.session() as session:
            assert session.scalar(select(func.count()).select_from(LtiResourceLink)) == 1
            assert session.scalar(select(func.count()).select_from(LtiLearner)) == 30
            assert session.scalar(select(func.count()).select_from(Participation)) == 30
    finally:
        database.dispose()


def test_a_browser_that_drops_our_cookie_in_the_iframe_opens_parcours_in_a_tab(
    app, db_session, lms, world
):
    _, campaign, _ = world
    state, nonce = login(app.test_client(), lms)
    token = lms.sign(lms.claims(nonce, custom={"campaign_code": campaign.code}))
    iframe = app.test_client()  # the login's state cookie did not come back: cookies blocked
    launched = iframe.post("/lti/launch", data={"id_token": token, "state": state})
    handoff = launched.headers["Location"]
    assert handoff.startswith("/lti/suite?t=")
    blocked = app.test_client()  # the same browser, its cookie refused in the iframe
    page = blocked.get(handoff)
    assert page.status_code == 200 and "nouvel onglet" in page.get_data(as_text=True)
    found = re.search(r'href="([^"]+)" target="_blank"', page.get_data(as_text=True))
    tab_link = found.group(1).replace("&amp;", "&")
    assert "onglet=1" in tab_link
    tab = app.test_client()  # a first-party tab
    opened = tab.get(tab_link)
    assert opened.status_code == 303
    assert opened.headers["Location"].endswith(f"/campagnes/{campaign.code}/regles/1")
    assert tab.get(opened.headers["Location"]).status_code == 200  # signed in, no password
    assert app.test_client().get(tab_link).status_code == 410  # single use
    assert app.test_client().get(handoff + "x").status_code == 404


# -- platform storage (lti_storage_target) --------------------------------------------------------


def storage_login(client, lms, target="_parent"):
    """A login whose platform offers its storage: a page puts the state and nonce there."""
    query = {
        "iss": lms.issuer,
        "login_hint": "opaque-user",
        "target_link_uri": f"{OWN}/lti/launch",
        "client_id": lms.client_id,
        "lti_storage_target": target,
    }
    page = client.get("/lti/login", query_string=query)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-lti-storage="put"' in html
    next_url = re.search(r'data-next="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert next_url.startswith(lms.auth_login_url + "?")
    sent = query_of(next_url)
    assert f'data-state="{sent["state"]}"' in html and f'data-nonce="{sent["nonce"]}"' in html
    assert f'data-target="{target}"' in html and f'data-origin="{lms.issuer}"' in html
    assert state_cookie_name(sent["state"]) in page.headers["Set-Cookie"]  # the cookie as well
    return sent["state"], sent["nonce"]


def test_a_login_puts_its_state_in_the_storage_the_platform_offers(app, db_session, lms, world):
    storage_login(app.test_client(), lms)
    storage_login(app.test_client(), lms, target="post_message_forwarding")
    for not_a_frame_name in ("", "a b", "<script>", "x" * 65):
        login(app.test_client(), lms, lti_storage_target=not_a_frame_name)  # a plain redirect


def test_with_its_cookie_a_storage_launch_goes_straight_on(app, db_session, lms, world):
    _, campaign, _ = world
    client = app.test_client()
    state, nonce = storage_login(client, lms)
    token = lms.sign(lms.claims(nonce, custom={"campaign_code": campaign.code}))
    launched = client.post("/lti/launch", data={"id_token": token, "state": state})
    assert launched.status_code == 303
    assert launched.headers["Location"].endswith(f"/campagnes/{campaign.code}/regles/1")


def test_without_its_cookie_a_launch_is_checked_against_the_platform_storage(
    app, db_session, lms, world
):
    _, campaign, _ = world
    state, nonce = storage_login(app.test_client(), lms)
    token = lms.sign(lms.claims(nonce, custom={"campaign_code": campaign.code}))
    iframe = app.test_client()  # the state cookie did not come back
    page = iframe.post("/lti/launch", data={"id_token": token, "state": state})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-lti-storage="check"' in html
    assert f'data-state="{state}"' in html and f'data-nonce="{nonce}"' in html
    assert 'name="lti_storage_checked" value=""' in html and token in html
    assert "Set-Cookie" not in page.headers  # nobody signed in yet
    assert count(db_session, Participation) == 0 and lti_identities(db_session) == 0

    # storage.js found both values: it posts the launch again, checked.
    launched = iframe.post(
        "/lti/launch", data={"id_token": token, "state": state, "lti_storage_checked": "1"}
    )
    assert launched.status_code == 303 and launched.headers["Location"].startswith("/lti/suite?")
    assert count(db_session, Participation) == 1
    again = iframe.post(
        "/lti/launch", data={"id_token": token, "state": state, "lti_storage_checked": "1"}
    )
    assert again.status_code == 400 and "déjà été utilisée" in again.get_data(as_text=True)


def test_a_launch_missing_from_the_platform_storage_is_refused(app, db_session, lms, world):
    _, campaign, _ = world
    state, nonce = storage_login(app.test_client(), lms)
    token = lms.sign(lms.claims(nonce, custom={"campaign_code": campaign.code}))
    iframe = app.test_client()
    assert iframe.post("/lti/launch", data={"id_token": token, "state": state}).status_code == 200
    # storage.js did not find them (another browser's login): it posts the launch as refused.
    refused = iframe.post(
        "/lti/launch", data={"id_token": token, "state": state, "lti_storage_checked": "refused"}
    )
    assert refused.status_code == 400
    assert "demandée par ce navigateur" in refused.get_data(as_text=True)
    event = db_session.scalars(select(LtiEvent).order_by(LtiEvent.id.desc())).first()
    assert event.kind == LtiEventKind.REFUSED and event.summary.startswith("storage_missing")
    spent = iframe.post(
        "/lti/launch", data={"id_token": token, "state": state, "lti_storage_checked": "1"}
    )
    assert spent.status_code == 400  # the state is spent: no second try
    assert count(db_session, Participation) == 0
