"""A built-in test identity provider for development (`/dev/idp`, never mounted in production):
it plays the GAR's part so that a newcomer signs in as a demo student or teacher of the demo
school without an ENT — through the same AuthnRequest, signed response and ACS as the real one.

It has its own throwaway key and certificate (in a JSON file of the instance folder), publishes
its metadata, reads our AuthnRequest (HTTP-Redirect), asks who you are, and posts a response
whose assertion it signs (RSA-SHA256) to our ACS with GAR attributes. `parcours demo` registers
it as the identity provider `gar-demo` of the demo school. `mint_response` is also what the
tests' fake IdP signs with.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Blueprint, Flask, abort, current_app, render_template, request
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaigns.connectors import Organization
from config.security import csrf
from config.settings import Settings
from sso import keys, registry
from sso.models import AttributeMapping

blueprint = Blueprint("devidp", __name__, template_folder="templates")
csrf.exempt(blueprint)  # it plays another site

SLUG = "gar-demo"
PEOPLE = {
    "noah": {
        "label": "Noah Lefèvre, élève de 4e B (sur la liste de l’établissement, né le 9/1/2011)",
        "IDO": ["demo-ido-noah"],
        "PRO": ["National_elv"],
        "PRE": ["Noah"],
        "NOM": ["Lefèvre"],
        "DIV": ["4B##4e B"],
    },
    "chloe": {
        "label": "Chloé Moreau, élève de 3e A (sur la liste de l’établissement, née le 30/5/2010)",
        "IDO": ["demo-ido-chloe"],
        "PRO": ["National_elv"],
        "PRE": ["Chloé"],
        "NOM": ["Moreau"],
        "DIV": ["3A##3e A"],
    },
    "zoe": {
        "label": "Zoé Nouvelle, élève arrivée en cours d’année (pas encore sur la liste)",
        "IDO": ["demo-ido-zoe"],
        "PRO": ["National_elv"],
        "PRE": ["Zoé"],
        "NOM": ["Nouvelle"],
        "DIV": ["4B##4e B"],
    },
    "garnier": {
        "label": "Sophie Garnier, professeure documentaliste",
        "IDO": ["demo-ido-garnier"],
        "PRO": ["National_doc"],
        "PRE": ["Sophie"],
        "NOM": ["Garnier"],
        "P_MEL": ["sophie.garnier@ac-demo.example"],
    },
}
_lock = threading.Lock()


def init_app(app: Flask) -> None:
    settings: Settings = app.config["PARCOURS_SETTINGS"]
    if not settings.is_production:
        app.register_blueprint(blueprint)


def entity_id(public_url: str) -> str:
    return public_url.rstrip("/") + "/dev/idp"


# -- its key and metadata --------------------------------------------------------------------------


def new_key_and_certificate(common_name: str) -> tuple[str, str]:
    """A throwaway RSA key and self-signed certificate (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return (
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
    )


def _state(instance_path: str) -> dict[str, str]:
    """The IdP's key and certificate, made at first use (callers hold `_lock`)."""
    path = Path(instance_path) / "dev-idp.json"
    if path.exists():
        state: dict[str, str] = json.loads(path.read_text())
        return state
    private_pem, certificate_pem = new_key_and_certificate("Parcours dev IdP")
    state = {"private_pem": private_pem, "certificate_pem": certificate_pem}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state))
    temporary.replace(path)
    return state


def metadata(entity: str, sso_url: str, certificates: list[str]) -> bytes:
    """An IdP metadata document (HTTP-Redirect SSO, signing certificates in PEM)."""
    key_descriptors = "".join(
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{keys.certificate_body(c)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
        "</md:KeyDescriptor>"
        for c in certificates
    )
    return (
        '<?xml version="1.0"?>'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID={quoteattr(entity)}>'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{key_descriptors}"
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f"Location={quoteattr(sso_url)}/>"
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    ).encode()


def register_demo_idp(
    session: Session, organization: Organization, public_url: str, instance_path: str
) -> None:
    """Register the built-in IdP for the demo school (once)."""
    if registry.find_idp(session, SLUG) is not None:
        return
    with _lock:
        state = _state(instance_path)
    entity = entity_id(public_url)
    registry.add_idp(
        session,
        slug=SLUG,
        name="GAR de démonstration",
        metadata=metadata(entity, f"{entity}/sso", [state["certificate_pem"]]),
        mapping=AttributeMapping.GAR,
        organizations=[organization],
    )


# -- responses ------------------------------------------------------------------------------------


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mint_response(
    *,
    issuer: str,
    private_pem: str,
    certificate_pem: str,
    acs: str,
    audience: str,
    attributes: dict[str, list[str]],
    in_response_to: str | None,
    destination: str | None = None,
    recipient: str | None = None,
    issued: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(minutes=5),
    assertion_id: str | None = None,
    signed: bool = True,
    tamper: Callable[[str], str] | None = None,
    doctype: str = "",
) -> str:
    """A base64 SAMLResponse whose assertion is signed (RSA-SHA256, exclusive c14n), then
    wrapped in the response, as IdPs do. The other arguments exist to break one check at a time
    in tests."""
    now = issued or dt.datetime.now(dt.UTC)
    until = now + lifetime
    answer = f" InResponseTo={quoteattr(in_response_to)}" if in_response_to else ""
    values = "".join(
        f"<saml:Attribute Name={quoteattr(name)} "
        'NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">'
        + "".join(
            '<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">'
            f"{escape(v)}</saml:AttributeValue>"
            for v in vals
        )
        + "</saml:Attribute>"
        for name, vals in attributes.items()
    )
    assertion = (
        '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="{assertion_id or "_a" + secrets.token_hex(16)}" Version="2.0" '
        f'IssueInstant="{_instant(now)}">'
        f"<saml:Issuer>{escape(issuer)}</saml:Issuer>"
        "<saml:Subject><saml:NameID "
        'Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient">'
        f"_t{secrets.token_hex(8)}</saml:NameID>"
        '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<saml:SubjectConfirmationData{answer} NotOnOrAfter="{_instant(until)}" '
        f"Recipient={quoteattr(recipient or acs)}/>"
        "</saml:SubjectConfirmation></saml:Subject>"
        f'<saml:Conditions NotBefore="{_instant(now - dt.timedelta(seconds=30))}" '
        f'NotOnOrAfter="{_instant(until)}">'
        f"<saml:AudienceRestriction><saml:Audience>{escape(audience)}</saml:Audience>"
        "</saml:AudienceRestriction></saml:Conditions>"
        f'<saml:AuthnStatement AuthnInstant="{_instant(now)}" '
        f'SessionIndex="_s{secrets.token_hex(8)}"><saml:AuthnContext>'
        "<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:"
        "PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext>"
        "</saml:AuthnStatement>"
        f"<saml:AttributeStatement>{values}</saml:AttributeStatement>"
        "</saml:Assertion>"
    )
    if signed:
        signed_assertion = OneLogin_Saml2_Utils.add_sign(assertion, private_pem, certificate_pem)
        assertion = (
            signed_assertion.decode()
            if isinstance(signed_assertion, bytes)
            else str(signed_assertion)
        )
    if tamper is not None:
        assertion = tamper(assertion)
    response = (
        f"{doctype}"
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="_r{secrets.token_hex(16)}" Version="2.0" IssueInstant="{_instant(now)}" '
        f"Destination={quoteattr(destination or acs)}{answer}>"
        f"<saml:Issuer>{escape(issuer)}</saml:Issuer>"
        '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
        f"</samlp:Status>{assertion}</samlp:Response>"
    )
    return base64.b64encode(response.encode()).decode()


def read_request(encoded: str) -> dict[str, str]:
    """The id, ACS URL and issuer of a deflated, base64 AuthnRequest (HTTP-Redirect)."""
    try:
        xml = zlib.decompress(base64.b64decode(encoded), -15)
        root = OneLogin_Saml2_XML.to_etree(xml)
    except Exception:
        abort(400)
    issuers = OneLogin_Saml2_XML.query(root, "/samlp:AuthnRequest/saml:Issuer")
    request_id, acs = root.get("ID"), root.get("AssertionConsumerServiceURL")
    if not request_id or not acs or not issuers:
        abort(400)
    return {"id": request_id, "acs": acs, "issuer": OneLogin_Saml2_XML.element_text(issuers[0])}


# -- pages ----------------------------------------------------------------------------------------


def _public() -> str:
    settings: Settings = current_app.config["PARCOURS_SETTINGS"]
    return settings.public_url.rstrip("/")


@blueprint.get("/dev/idp", endpoint="home")
def home() -> str:
    return render_template("devidp/home.html", slug=SLUG, people=PEOPLE)


@blueprint.get("/dev/idp/metadata.xml", endpoint="metadata")
def metadata_view() -> Response:
    with _lock:
        state = _state(current_app.instance_path)
    entity = entity_id(_public())
    document = metadata(entity, f"{entity}/sso", [state["certificate_pem"]])
    return Response(document, mimetype="application/samlmetadata+xml")


@blueprint.get("/dev/idp/sso", endpoint="sso")
def sso() -> str:
    """The IdP's sign-in page: whom to sign in as, for the AuthnRequest received."""
    read = read_request(request.args.get("SAMLRequest", ""))
    if not read["acs"].startswith(_public() + "/sso/saml/"):
        abort(400)  # only ours
    return render_template(
        "devidp/choose.html",
        people=PEOPLE,
        saml_request=request.args.get("SAMLRequest", ""),
        relay_state=request.args.get("RelayState", ""),
    )


@blueprint.post("/dev/idp/sso", endpoint="answer")
def answer() -> str:
    read = read_request(request.form.get("SAMLRequest", ""))
    if not read["acs"].startswith(_public() + "/sso/saml/"):
        abort(400)
    person = PEOPLE.get(request.form.get("person", ""))
    if person is None:
        abort(400)
    with _lock:
        state = _state(current_app.instance_path)
    attributes: dict[str, Any] = {k: v for k, v in person.items() if k != "label"}
    attributes["UAI"] = [_school_uai()]
    encoded = mint_response(
        issuer=entity_id(_public()),
        private_pem=state["private_pem"],
        certificate_pem=state["certificate_pem"],
        acs=read["acs"],
        audience=read["issuer"],
        attributes=attributes,
        in_response_to=read["id"],
    )
    return render_template(
        "devidp/post.html",
        action=read["acs"],
        fields={"SAMLResponse": encoded, "RelayState": request.form.get("RelayState", "")},
    )


def _school_uai() -> str:
    """The UAI of the school the demo IdP is attached to (the demo school)."""
    from config.db import get_session

    session = get_session()
    idp = registry.find_idp(session, SLUG)
    if idp is None:
        abort(404)
    for organization_id in sorted(registry.organization_ids(session, idp)):
        organization = session.get(Organization, organization_id)
        if organization is not None and organization.uai:
            return organization.uai
    abort(404)
