"""A fake SAML identity provider for the tests: throwaway key and certificate, its metadata, and
responses minted the way an IdP does (the assertion signed, then wrapped in the response), with
knobs to break each check the service provider must make."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
import zlib
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.utils import OneLogin_Saml2_Utils

_lock = threading.Lock()
_made: dict[str, tuple[str, str]] = {}


def key_and_certificate(seed: str) -> tuple[str, str]:
    """A throwaway RSA key and self-signed certificate per name, made once (PEM)."""
    with _lock:
        if seed not in _made:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, seed)])
            now = dt.datetime.now(dt.UTC)
            certificate = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=365))
                .sign(key, hashes.SHA256())
            )
            _made[seed] = (
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                certificate.public_bytes(serialization.Encoding.PEM).decode(),
            )
        return _made[seed]


def _body(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def student(**changes: list[str]) -> dict[str, list[str]]:
    """GAR attributes of a student of the test school."""
    return {
        "IDO": ["gar-ido-7f3a9c"],
        "UAI": ["0750999Z"],
        "PRO": ["National_elv"],
        "PRE": ["Léa"],
        "NOM": ["Martin"],
        "DIV": ["2NDB##2nde B"],
        **changes,
    }


def teacher(**changes: list[str]) -> dict[str, list[str]]:
    return {
        "IDO": ["gar-ido-prof-42"],
        "UAI": ["0750999Z"],
        "PRO": ["National_ens"],
        "PRE": ["Claire"],
        "NOM": ["Durand"],
        "P_MEL": ["claire.durand@ac-paris.fr"],
        **changes,
    }


@dataclass
class FakeIdp:
    entity_id: str = "https://idp.gar.example/idp"
    sso_url: str = "https://idp.gar.example/sso"
    key_name: str = "gar-idp"
    extra_certificates: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return key_and_certificate(self.key_name)[0]

    @property
    def certificate(self) -> str:
        return key_and_certificate(self.key_name)[1]

    def metadata(self, *, valid_until: dt.datetime | None = None, certificates=None) -> bytes:
        certs = certificates if certificates is not None else [self.certificate]
        keys = "".join(
            '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
            f"{_body(c)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            for c in certs
        )
        until = f" validUntil={quoteattr(_instant(valid_until))}" if valid_until else ""
        return (
            '<?xml version="1.0"?>'
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
            f"entityID={quoteattr(self.entity_id)}{until}>"
            '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            f"{keys}"
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
            f"Location={quoteattr(self.sso_url)}/>"
            "</md:IDPSSODescriptor></md:EntityDescriptor>"
        ).encode()

    @staticmethod
    def request_of(redirect_url: str) -> tuple[str, str, dict[str, list[str]]]:
        """The id and ACS URL of the AuthnRequest in our login redirect, and its query."""
        query = parse_qs(urlsplit(redirect_url).query)
        xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
        request_id = xml.split(' ID="', 1)[1].split('"', 1)[0]
        acs = xml.split('AssertionConsumerServiceURL="', 1)[1].split('"', 1)[0]
        return request_id, acs, query

    def response(
        self,
        *,
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
        key_name: str | None = None,
        tamper=None,
        doctype: str = "",
    ) -> str:
        """A base64 SAMLResponse, the assertion signed (by `key_name`'s key when given)."""
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
            f"<saml:Issuer>{escape(self.entity_id)}</saml:Issuer>"
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
            key, certificate = key_and_certificate(key_name or self.key_name)
            assertion = OneLogin_Saml2_Utils.add_sign(assertion, key, certificate)
            if isinstance(assertion, bytes):
                assertion = assertion.decode()
        if tamper is not None:
            assertion = tamper(assertion)
        response = (
            f"{doctype}"
            '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
            f'ID="_r{secrets.token_hex(16)}" Version="2.0" IssueInstant="{_instant(now)}" '
            f"Destination={quoteattr(destination or acs)}{answer}>"
            f"<saml:Issuer>{escape(self.entity_id)}</saml:Issuer>"
            '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
            f"</samlp:Status>{assertion}</samlp:Response>"
        )
        return base64.b64encode(response.encode()).decode()
