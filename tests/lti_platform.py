"""An in-process fake LMS for the LTI tests: its own throwaway RSA keys, id_tokens signed as a
platform signs them, and its endpoints (JWKS, OAuth2 token, AGS, NRPS) served by `responses`.
Nothing leaves the process."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
RESULT_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


_keys: dict[str, str] = {}
_keys_lock = threading.Lock()


def _rsa_pem(seed: str) -> str:
    """A throwaway key per name, made once (generating RSA keys is slow; threads share it)."""
    with _keys_lock:
        if seed not in _keys:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _keys[seed] = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
        return _keys[seed]


@dataclass
class FakePlatform:
    issuer: str = "https://moodle.lycee.example"
    client_id: str = "parcours-client"
    deployment_id: str = "1"
    kid: str = "platform-key-1"
    key_name: str = "first"
    scores: list[dict[str, Any]] = field(default_factory=list)  # what the gradebook received
    token_requests: int = 0

    @property
    def private_pem(self) -> str:
        return _rsa_pem(self.key_name)

    @property
    def auth_login_url(self) -> str:
        return f"{self.issuer}/mod/lti/auth.php"

    @property
    def auth_token_url(self) -> str:
        return f"{self.issuer}/mod/lti/token.php"

    @property
    def key_set_url(self) -> str:
        return f"{self.issuer}/mod/lti/certs.php"

    @property
    def lineitems_url(self) -> str:
        return f"{self.issuer}/mod/lti/services.php/2/lineitems?type_id=1"

    def lineitem_url(self, n: int = 7) -> str:
        return f"{self.issuer}/mod/lti/services.php/2/lineitems/{n}/lineitem?type_id=1"

    def registration_fields(self) -> dict[str, str]:
        """The keyword arguments of `lti_tool.registry.add_platform` for this platform."""
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "deployment_id": self.deployment_id,
            "auth_login_url": self.auth_login_url,
            "auth_token_url": self.auth_token_url,
            "key_set_url": self.key_set_url,
        }

    def register(self, session, organization, **fields):
        from lti_tool import registry

        return registry.add_platform(
            session, organization=organization, **{**self.registration_fields(), **fields}
        )

    def rotate_key(self) -> None:
        """The platform changes its signing key (a new kid)."""
        self.key_name += "-next"
        self.kid += "-next"

    def jwks(self) -> dict[str, Any]:
        public = JWK.from_pem(self.private_pem.encode()).export_public(as_dict=True)
        public.update(kid=self.kid, alg="RS256", use="sig")
        return {"keys": [public]}

    # -- messages ---------------------------------------------------------------------------------

    def claims(
        self,
        nonce: str,
        *,
        sub: str | None = "student-8f14e45f",
        roles: list[str] | None = None,
        resource_link_id: str = "rl-42",
        custom: dict[str, str] | None = None,
        ags: bool = True,
        lineitem: bool = True,
        message_type: str = "LtiResourceLinkRequest",
        **extra: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "given_name": "Léa",
            "family_name": "Martin",
            "name": "Léa Martin",
            "email": "lea.martin@lycee.example",
            LTI + "deployment_id": self.deployment_id,
            LTI + "message_type": message_type,
            LTI + "version": "1.3.0",
            LTI + "roles": [LEARNER] if roles is None else roles,
            LTI + "target_link_uri": "http://127.0.0.1:5000/lti/launch",
            LTI + "context": {"id": "course-3", "label": "SNT", "title": "SNT 2de B"},
            LTI + "tool_platform": {"guid": "moodle-lycee", "name": "Moodle du lycée"},
        }
        if sub is not None:
            body["sub"] = sub
        if message_type == "LtiResourceLinkRequest":
            body[LTI + "resource_link"] = {"id": resource_link_id, "title": "Évaluation PIX"}
        else:
            body[DL + "deep_linking_settings"] = {
                "deep_link_return_url": f"{self.issuer}/mod/lti/contentitem_return.php",
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "accept_multiple": False,
                "data": "opaque-platform-data",
            }
        if custom:
            body[LTI + "custom"] = custom
        if ags:
            body[AGS] = {
                "scope": [SCORE_SCOPE, LINEITEM_SCOPE, RESULT_SCOPE],
                "lineitems": self.lineitems_url,
            }
            if lineitem:
                body[AGS]["lineitem"] = self.lineitem_url()
        body.update(extra)
        return body

    def sign(self, body: dict[str, Any], *, kid: str | None = "default", alg: str = "RS256") -> str:
        headers = {} if kid is None else {"kid": self.kid if kid == "default" else kid}
        return jwt.encode(body, self.private_pem, algorithm=alg, headers=headers)

    # -- endpoints --------------------------------------------------------------------------------

    def serve(self, mock: responses.RequestsMock) -> None:
        """JWKS, token and AGS score endpoints on `mock` (a `responses.RequestsMock`)."""
        mock.add_callback(responses.GET, self.key_set_url, callback=self._jwks_response)
        mock.add_callback(responses.POST, self.auth_token_url, callback=self._token_response)

    def _jwks_response(self, request):
        return 200, {"Content-Type": "application/json"}, json.dumps(self.jwks())

    def _token_response(self, request):
        form = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        assertion = form["client_assertion"][0]
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
        assert claims["iss"] == claims["sub"] == self.client_id
        assert header.get("kid")
        self.token_requests += 1
        body = {
            "access_token": f"token-{uuid.uuid4().hex}",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": form["scope"][0],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
