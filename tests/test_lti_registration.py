"""LTI Advantage Dynamic Registration against a fake Moodle: configuration fetched with the
registration token, client metadata posted, the platform stored inactive until an
administrator activates it."""

import json

import pytest
import responses
from sqlalchemy import func, select

from lti_tool import registration
from lti_tool.models import LtiDeployment, LtiEvent, LtiEventKind, LtiPlatform
from tests.conftest import TEST_SECRET
from tests.journey_helpers import school
from tests.lti_platform import query_of

MOODLE = "https://moodle.lycee.example"
CONFIGURATION_URL = f"{MOODLE}/mod/lti/openid-configuration.php"
REGISTRATION_ENDPOINT = f"{MOODLE}/mod/lti/openid-registration.php"


def configuration(**changes):
    body = {
        "issuer": MOODLE,
        "authorization_endpoint": f"{MOODLE}/mod/lti/auth.php",
        "token_endpoint": f"{MOODLE}/mod/lti/token.php",
        "jwks_uri": f"{MOODLE}/mod/lti/certs.php",
        "registration_endpoint": REGISTRATION_ENDPOINT,
        "scopes_supported": [
            "https://purl.imsglobal.org/spec/lti-ags/scope/score",
            "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
            "openid",
        ],
        "https://purl.imsglobal.org/spec/lti-platform-configuration": {
            "product_family_code": "moodle",
            "version": "4.3",
            "messages_supported": [
                {"type": "LtiResourceLinkRequest"},
                {"type": "LtiDeepLinkingRequest"},
            ],
        },
    }
    body.update(changes)
    return body


@pytest.fixture
def organization(db_session):
    found, _ = school(db_session)
    db_session.commit()
    return found


def url_for_org(organization):
    return registration.registration_url("http://127.0.0.1:5000", TEST_SECRET, organization)


def register(client, organization, *, registration_token="reg-token-1"):  # noqa: S107
    link = query_of(url_for_org(organization))
    return client.get(
        "/lti/register",
        query_string={
            **link,
            "openid_configuration": CONFIGURATION_URL,
            "registration_token": registration_token,
        },
    )


def test_moodle_registers_parcours_which_waits_for_activation(app, db_session, organization):
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET,
            CONFIGURATION_URL,
            json=configuration(),
            match=[responses.matchers.header_matcher({"Authorization": "Bearer reg-token-1"})],
        )
        mock.add(
            responses.POST,
            REGISTRATION_ENDPOINT,
            json={
                "client_id": "moodle-client-7",
                "https://purl.imsglobal.org/spec/lti-tool-configuration": {"deployment_id": "12"},
            },
            match=[responses.matchers.header_matcher({"Authorization": "Bearer reg-token-1"})],
        )
        response = register(app.test_client(), organization)
        sent = json.loads(mock.calls[1].request.body)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "attente d’activation" in page and "close.js" in page
    assert sent["initiate_login_uri"] == "http://127.0.0.1:5000/lti/login"
    assert sent["redirect_uris"] == ["http://127.0.0.1:5000/lti/launch"]
    assert sent["jwks_uri"] == "http://127.0.0.1:5000/lti/jwks.json"
    assert sent["token_endpoint_auth_method"] == "private_key_jwt"
    assert sent["grant_types"] == ["implicit", "client_credentials"]
    assert "score" in sent["scope"] and "contextmembership" not in sent["scope"]  # not offered
    tool = sent["https://purl.imsglobal.org/spec/lti-tool-configuration"]
    assert tool["domain"] == "127.0.0.1:5000"
    assert {m["type"] for m in tool["messages"]} == {
        "LtiResourceLinkRequest",
        "LtiDeepLinkingRequest",
    }

    platform = db_session.scalars(select(LtiPlatform)).one()
    assert (platform.issuer, platform.client_id, platform.is_active) == (
        MOODLE,
        "moodle-client-7",
        False,
    )
    assert platform.key_set_url == f"{MOODLE}/mod/lti/certs.php"
    deployment = db_session.scalars(select(LtiDeployment)).one()
    assert (deployment.deployment_id, deployment.organization_id) == ("12", organization.id)
    assert db_session.scalars(select(LtiEvent.kind)).all() == [LtiEventKind.REGISTERED]

    # Pending: the platform launches nobody until an administrator activates it.
    pending = app.test_client().get(
        "/lti/login",
        query_string={
            "iss": MOODLE,
            "client_id": "moodle-client-7",
            "login_hint": "u",
            "target_link_uri": "http://127.0.0.1:5000/lti/launch",
        },
    )
    assert pending.status_code == 403


def _platforms(db_session):
    return db_session.scalar(select(func.count()).select_from(LtiPlatform))


@pytest.mark.parametrize(
    ("served", "status"),
    [
        ({"json": configuration(issuer="https://elsewhere.example")}, 502),
        ({"json": configuration(jwks_uri="http://moodle.lycee.example/certs")}, 502),
        (
            {
                "json": configuration(
                    **{
                        "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                            "messages_supported": [{"type": "LtiDeepLinkingRequest"}]
                        }
                    }
                )
            },
            502,
        ),
        ({"status": 401, "json": {"error": "invalid token"}}, 502),
        ({"body": "<html>oops</html>"}, 502),
    ],
)
def test_an_unusable_configuration_registers_nothing(app, db_session, organization, served, status):
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, CONFIGURATION_URL, **served)
        response = register(app.test_client(), organization)
    assert response.status_code == status
    assert "annulé" in response.get_data(as_text=True) or "ne répond" in response.get_data(
        as_text=True
    )
    assert _platforms(db_session) == 0


def test_a_refused_registration_post_registers_nothing(app, db_session, organization):
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, CONFIGURATION_URL, json=configuration())
        mock.add(responses.POST, REGISTRATION_ENDPOINT, status=400, json={"error": "bad"})
        assert register(app.test_client(), organization).status_code == 502
    assert _platforms(db_session) == 0


def test_registering_twice_is_refused(app, db_session, organization):
    for expected in (200, 409):
        with responses.RequestsMock() as mock:
            mock.add(responses.GET, CONFIGURATION_URL, json=configuration())
            mock.add(responses.POST, REGISTRATION_ENDPOINT, json={"client_id": "same"})
            assert register(app.test_client(), organization).status_code == expected
    assert _platforms(db_session) == 1


def test_only_our_registration_links_work(app, db_session, organization, monkeypatch):
    client = app.test_client()
    forged = client.get(
        "/lti/register",
        query_string={"o": "forged", "openid_configuration": CONFIGURATION_URL},
    )
    assert forged.status_code == 404
    other = query_of(
        registration.registration_url("http://127.0.0.1:5000", "another-secret-key", organization)
    )
    outsider = client.get(
        "/lti/register", query_string={**other, "openid_configuration": CONFIGURATION_URL}
    )
    assert outsider.status_code == 404
    monkeypatch.setattr(registration, "LINK_LIFETIME", -1)
    assert register(client, organization).status_code == 410
    assert _platforms(db_session) == 0
