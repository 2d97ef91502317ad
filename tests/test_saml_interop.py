"""Interoperability: an independent SAML implementation (pysaml2's IdP `Server`, signing with
Debian's xmlsec1) reads our metadata and AuthnRequest and answers; Parcours accepts its signed
response and refuses it replayed or altered. No response here is minted by Parcours' code."""

from __future__ import annotations

import base64
import os
import shutil
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from campaigns.shared.models import AuthenticationMethod, Membership
from sso import registry
from tests.journey_helpers import school
from tests.saml_idp import FakeIdp, key_and_certificate

XMLSEC = shutil.which("xmlsec1")
OWN = "http://127.0.0.1:5000"
IDP = "https://idp.interop.example/idp"


@pytest.fixture
def pysaml2_idp(tmp_path):
    if XMLSEC is None:
        if os.environ.get("CI"):
            pytest.fail("xmlsec1 is missing: `make install` installs Debian's xmlsec1")
        pytest.skip("xmlsec1 is not installed (make install-browser)")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.config import IdPConfig
    from saml2.saml import NAME_FORMAT_BASIC
    from saml2.server import Server

    key, certificate = key_and_certificate("pysaml2-idp")
    (tmp_path / "idp.key").write_text(key)
    (tmp_path / "idp.crt").write_text(certificate)

    def make(sp_metadata: str) -> Server:
        config = IdPConfig()
        config.load(
            {
                "entityid": IDP,
                "xmlsec_binary": XMLSEC,
                "key_file": str(tmp_path / "idp.key"),
                "cert_file": str(tmp_path / "idp.crt"),
                "metadata": {"inline": [sp_metadata]},
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (f"{IDP}/sso", BINDING_HTTP_REDIRECT),
                                (f"{IDP}/sso/post", BINDING_HTTP_POST),
                            ]
                        },
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": 5},
                                "attribute_restrictions": None,
                                "name_form": NAME_FORMAT_BASIC,
                            }
                        },
                        "want_authn_requests_signed": True,
                    }
                },
            }
        )
        return Server(config=config)

    return make, certificate


def test_a_response_of_pysaml2_is_accepted_and_its_replay_refused(app, db_session, pysaml2_idp):
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.saml import NAMEID_FORMAT_TRANSIENT, NameID
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    make, certificate = pysaml2_idp
    organization, _ = school(db_session, uai="0750999Z")
    idp_metadata = FakeIdp(entity_id=IDP, sso_url=f"{IDP}/sso").metadata(certificates=[certificate])
    registry.add_idp(
        db_session, slug="interop", metadata=idp_metadata, organizations=[organization]
    )
    db_session.commit()
    client = app.test_client()
    sp_metadata = client.get("/sso/saml/interop/metadata.xml").get_data(as_text=True)
    server = make(sp_metadata)

    def answered(identity):
        """Our login redirect read by pysaml2 (which checks its signature against the certificate
        of our metadata) and its signed answer."""
        login = client.get("/sso/saml/interop/login")
        query = {k: v[0] for k, v in parse_qs(urlsplit(login.headers["Location"]).query).items()}
        request = server.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query["RelayState"],
            sigalg=query["SigAlg"],
            signature=query["Signature"],
        )
        assert request.message.issuer.text == f"{OWN}/sso/saml/interop/metadata.xml"
        return str(
            server.create_authn_response(
                identity=identity,
                in_response_to=request.message.id,
                destination=request.message.assertion_consumer_service_url,
                sp_entity_id=request.message.issuer.text,
                name_id=NameID(format=NAMEID_FORMAT_TRANSIENT, text="_transient-1"),
                authn={
                    "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
                },
                sign_assertion=True,
                sign_response=False,
                sign_alg=SIG_RSA_SHA256,
                digest_alg=DIGEST_SHA256,
            )
        )

    teacher = {
        "IDO": ["interop-ido-1"],
        "UAI": ["0750999Z"],
        "PRO": ["National_ens"],
        "PRE": ["Inès"],
        "NOM": ["Interop"],
    }
    response = answered(teacher)
    encoded = base64.b64encode(str(response).encode()).decode()
    accepted = client.post("/sso/saml/interop/acs", data={"SAMLResponse": encoded})
    assert accepted.status_code == 303, accepted.get_data(as_text=True)
    assert accepted.headers["Location"].startswith("/orga")
    assert db_session.scalar(select(func.count()).select_from(Membership)) == 2  # admin + Inès
    methods = db_session.scalars(select(AuthenticationMethod.external_id)).all()
    assert "interop-ido-1" in methods

    replay = client.post("/sso/saml/interop/acs", data={"SAMLResponse": encoded})
    assert replay.status_code == 400
    assert _last_refusal(db_session).startswith("unknown_request")
    altered = answered({**teacher, "IDO": ["interop-ido-2"]}).replace(
        "interop-ido-2", "interop-ido-3"
    )
    encoded = base64.b64encode(altered.encode()).decode()
    assert client.post("/sso/saml/interop/acs", data={"SAMLResponse": encoded}).status_code == 400
    assert _last_refusal(db_session).startswith("invalid: Signature validation failed")


def _last_refusal(db_session) -> str:
    from sso.models import SamlEvent

    event = db_session.scalars(select(SamlEvent).order_by(SamlEvent.id.desc())).first()
    return event.summary
