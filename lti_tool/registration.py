"""LTI Advantage Dynamic Registration: an LMS administrator pastes our registration URL, the LMS
opens it with its configuration and a registration token, and the tool registers itself.

The URL an administrator pastes is made for one organization (`registration_url`, from `/admin`
or `parcours lti registration-url`): it carries a signed, expiring token naming the organization
its deployments reach. The platform is created inactive — Moodle, too, keeps a dynamically
registered tool pending — and an instance administrator activates it in `/admin`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from campaigns.connectors import AlreadyExists, InvalidInput, Organization
from lti_tool import registry
from lti_tool.models import LtiPlatform

LINK_LIFETIME = 7 * 24 * 3600  # seconds a registration URL works
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
)


class RegistrationRefused(Exception):
    """`reason` picks the page; the message is for the log."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="lti-dynamic-registration")


def registration_url(public_url: str, secret_key: str, organization: Organization) -> str:
    """The URL to paste in the LMS (Moodle: "Tool URL" of a dynamic registration)."""
    token = _serializer(secret_key).dumps({"organization": organization.id})
    return f"{public_url.rstrip('/')}/lti/register?{urlencode({'o': token})}"


def organization_of(session: Session, secret_key: str, token: str) -> Organization:
    try:
        found = _serializer(secret_key).loads(token, max_age=LINK_LIFETIME)
    except SignatureExpired:
        raise RegistrationRefused("link_expired", "registration URL expired") from None
    except BadSignature:
        raise RegistrationRefused("bad_link", "registration URL not ours") from None
    organization = session.get(Organization, found.get("organization"))
    if organization is None or organization.archived_at is not None:
        raise RegistrationRefused("bad_link", "organization gone or archived")
    return organization


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise RegistrationRefused("platform_error", f"{what}: not JSON") from None
    if not isinstance(body, dict):
        raise RegistrationRefused("platform_error", f"{what}: not a JSON object")
    return body


def fetch_configuration(http: requests.Session, url: str, token: str | None) -> dict[str, Any]:
    """The platform's OpenID configuration, checked: the issuer is the URL's own site, the
    endpoints are https and LTI resource links are supported."""
    try:
        registry.check_url(url, "openid_configuration")
    except InvalidInput:
        raise RegistrationRefused("bad_request", "openid_configuration is not https") from None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = http.get(url, headers=headers)
    except requests.RequestException as error:
        raise RegistrationRefused("platform_down", f"configuration: {error}") from None
    if not response.ok:
        raise RegistrationRefused("platform_error", f"configuration: HTTP {response.status_code}")
    configuration = _json(response, "configuration")
    issuer = configuration.get("issuer")
    if not isinstance(issuer, str) or urlsplit(issuer).netloc != urlsplit(url).netloc:
        raise RegistrationRefused("platform_error", "issuer is not the configuration's site")
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint"):
        value = configuration.get(field)
        try:
            registry.check_url(value if isinstance(value, str) else "", field)
        except InvalidInput:
            raise RegistrationRefused("platform_error", f"{field} missing or not https") from None
    platform = configuration.get(PLATFORM_CONFIGURATION)
    messages = platform.get("messages_supported", []) if isinstance(platform, dict) else []
    types = {m.get("type") for m in messages if isinstance(m, dict)}
    if "LtiResourceLinkRequest" not in types:
        raise RegistrationRefused("platform_error", "resource link launches not supported")
    return configuration


def client_metadata(public_url: str, configuration: dict[str, Any]) -> dict[str, Any]:
    base = public_url.rstrip("/")
    supported = set(configuration.get("scopes_supported") or SCOPES)
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": f"{base}/lti/login",
        "redirect_uris": [f"{base}/lti/launch"],
        "client_name": "Parcours",
        "jwks_uri": f"{base}/lti/jwks.json",
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(s for s in SCOPES if s in supported),
        TOOL_CONFIGURATION: {
            "domain": urlsplit(base).netloc,
            "description": "Parcours : évaluer les compétences numériques des élèves",
            "target_link_uri": f"{base}/lti/launch",
            "claims": ["iss", "sub", "name", "given_name", "family_name", "email"],
            "messages": [
                {"type": "LtiResourceLinkRequest", "target_link_uri": f"{base}/lti/launch"},
                {
                    "type": "LtiDeepLinkingRequest",
                    "target_link_uri": f"{base}/lti/launch",
                    "label": "Parcours",
                },
            ],
        },
    }


def register(
    session: Session,
    http: requests.Session,
    *,
    organization: Organization,
    openid_configuration: str,
    registration_token: str | None,
    public_url: str,
) -> LtiPlatform:
    """Run the whole exchange and store the platform, inactive, with its deployment."""
    configuration = fetch_configuration(http, openid_configuration, registration_token)
    headers = {"Content-Type": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    try:
        response = http.post(
            configuration["registration_endpoint"],
            json=client_metadata(public_url, configuration),
            headers=headers,
        )
    except requests.RequestException as error:
        raise RegistrationRefused("platform_down", f"registration: {error}") from None
    if not response.ok:
        raise RegistrationRefused("platform_error", f"registration: HTTP {response.status_code}")
    answer = _json(response, "registration")
    client_id = answer.get("client_id")
    tool = answer.get(TOOL_CONFIGURATION)
    deployment_id = tool.get("deployment_id") if isinstance(tool, dict) else None
    if not isinstance(client_id, str) or not client_id:
        raise RegistrationRefused("platform_error", "registration answer without client_id")
    platform_name = (configuration.get(PLATFORM_CONFIGURATION) or {}).get("product_family_code")
    try:
        return registry.add_platform(
            session,
            organization=organization,
            deployment_id=str(deployment_id or "1"),
            active=False,
            issuer=configuration["issuer"],
            client_id=client_id,
            auth_login_url=configuration["authorization_endpoint"],
            auth_token_url=configuration["token_endpoint"],
            key_set_url=configuration["jwks_uri"],
            audience=configuration.get("authorization_server") or None,
            name=str(platform_name or "")[:255],
        )
    except AlreadyExists:
        raise RegistrationRefused("already_registered", "issuer and client id known") from None
    except InvalidInput as error:
        raise RegistrationRefused("platform_error", str(error)) from None
