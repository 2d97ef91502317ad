"""The SAML 2.0 protocol, on python3-saml (strict) with its gaps closed here.

python3-saml checks the signature (always required), Audience, Recipient, Destination, Issuer,
the validity window (300 s of skew) and signature-wrapping variants. It does not keep a replay
cache, accepts unsolicited responses, never checks RelayState and raises on a DOCTYPE. So:

- every AuthnRequest id is stored with the destination the user wanted (`saml_requests`) and
  claimed once by the response answering it; a response without InResponseTo is refused unless
  the IdP allows IdP-initiated login;
- every accepted assertion id is remembered until it expires (`saml_seen_assertions`, a unique
  index: refused again in any process);
- RelayState is never read: it is the declared resource URL GAR wants back, nothing more;
- every failure raises `Refused` (the view shows a page with a support reference and logs the
  reason, never the assertion).

Settings are built per IdP at request time from the database. URLs come from `PUBLIC_URL`, not
from the request, so that Destination and Recipient are checked against what IdPs were told.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML
from sqlalchemy import update
from sqlalchemy.orm import Session

from config.db import insert_new, utcnow
from sso import keys
from sso.models import (
    AttributeMapping,
    SamlIdentityProvider,
    SamlRequest,
    SamlSeenAssertion,
)

REQUEST_LIFETIME = dt.timedelta(minutes=15)
LOGIN, TEST = "login", "test"  # a request's purpose: sign someone in, or an administrator's test
SKEW = dt.timedelta(seconds=300)  # python3-saml's allowed clock difference
RESPONSE_MAX_BYTES = 256 * 1024  # the base64 SAMLResponse field; GAR's are a few kilobytes

# GAR attribute short names; the request lists only what the mapping reads.
GAR_ATTRIBUTES = ("IDO", "UAI", "PRO", "PRE", "NOM", "DIV", "GRO", "P_MEL")
GAR_STUDENT = {"national_elv"}
GAR_TEACHER = {"national_ens", "national_doc"}
# Generic mapping: standard names (OID and LDAP forms), first found wins.
GENERIC_NAMES = {
    "id": ("urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "eduPersonPrincipalName", "uid"),
    "first_name": ("urn:oid:2.5.4.42", "givenName"),
    "last_name": ("urn:oid:2.5.4.4", "sn", "surname"),
    "email": ("urn:oid:0.9.2342.19200300.100.1.3", "mail", "email"),
    "affiliation": ("urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "eduPersonAffiliation"),
}
# Only teaching affiliations reach the panel (staff and employees see no students' results).
GENERIC_TEACHER = {"faculty", "teacher"}


class Refused(Exception):
    """A login that cannot go on. `reason` picks the page; `detail` is for the log only."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SamlUser:
    """Who the assertion says the user is, read through the IdP's attribute mapping."""

    external_id: str
    role: str  # "student" or "teacher"
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    uai: str | None = None  # the first school the assertion names
    uais: list[str] = field(default_factory=list)  # all of them (a teacher in several schools)
    classes: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


# -- settings ---------------------------------------------------------------------------------------


def sp_base(public_url: str, idp: SamlIdentityProvider) -> str:
    return f"{public_url.rstrip('/')}/sso/saml/{idp.slug}"


def _requested_attributes(idp: SamlIdentityProvider) -> list[dict[str, Any]]:
    names: tuple[str, ...]
    if idp.mapping is AttributeMapping.GAR:
        names = GAR_ATTRIBUTES
        name_format = OneLogin_Saml2_Constants.ATTRNAME_FORMAT_BASIC
    else:
        names = tuple(forms[0] for forms in GENERIC_NAMES.values())
        name_format = OneLogin_Saml2_Constants.ATTRNAME_FORMAT_URI
    required = {"IDO", "UAI", "PRO"}
    return [
        {"name": name, "nameFormat": name_format, "isRequired": name in required} for name in names
    ]


def settings(
    session: Session, idp: SamlIdentityProvider, public_url: str
) -> OneLogin_Saml2_Settings:
    """python3-saml's settings for one IdP, strict, with our signing key and, during a
    rollover, the other key listed in our metadata."""
    ring = keys.key_ring(session, urlsplit(public_url).hostname or "parcours")
    base = sp_base(public_url, idp)
    sp: dict[str, Any] = {
        "entityId": f"{base}/metadata.xml",  # GAR: the entity id is the metadata URL
        "assertionConsumerService": {
            "url": f"{base}/acs",
            "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST,
        },
        "NameIDFormat": OneLogin_Saml2_Constants.NAMEID_UNSPECIFIED,
        "x509cert": keys.certificate_body(ring.signing.certificate_pem),
        "privateKey": ring.signing.private_key_pem,
        "attributeConsumingService": {
            "serviceName": "Parcours",
            "serviceDescription": "Parcours",
            "requestedAttributes": _requested_attributes(idp),
        },
    }
    if ring.also_listed is not None:  # the next key published ahead, or the previous one
        sp["x509certNew"] = keys.certificate_body(ring.also_listed.certificate_pem)
    data = {
        "strict": True,
        "debug": False,
        "sp": sp,
        "idp": {
            "entityId": idp.entity_id,
            "singleSignOnService": {
                "url": idp.sso_url,
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
            },
            "x509certMulti": {"signing": list(idp.certificates)},
        },
        "security": {
            "authnRequestsSigned": True,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,
            "wantNameId": False,  # GAR identifies by the IDO attribute, not the NameID
            "requestedAuthnContext": False,
            "signMetadata": False,
            "rejectDeprecatedAlgorithm": True,
            "rejectUnsolicitedResponsesWithInResponseTo": True,
            "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
            "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
            "allowRepeatAttributeName": True,
        },
    }
    return OneLogin_Saml2_Settings(data, sp_validation_only=False)


def _request_data(public_url: str, path: str, post: dict[str, str] | None = None) -> dict[str, Any]:
    parts = urlsplit(public_url)
    prefix = parts.path.rstrip("/")
    return {
        "https": "on" if parts.scheme == "https" else "off",
        "http_host": parts.netloc,
        "script_name": prefix + path,
        "get_data": {},
        "post_data": post or {},
    }


def metadata_xml(session: Session, idp: SamlIdentityProvider, public_url: str) -> str:
    saml_settings = settings(session, idp, public_url)
    document: str = saml_settings.get_sp_metadata()
    errors = saml_settings.validate_metadata(document)
    if errors:  # pragma: no cover - our own settings
        raise RuntimeError(f"invalid SP metadata: {errors}")
    return document


# -- login ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    url: str  # the IdP's SSO URL with our signed AuthnRequest
    request_id: str


def request_hash(request_id: str) -> str:
    return hashlib.sha256(request_id.encode()).hexdigest()


def start_login(
    session: Session,
    idp: SamlIdentityProvider,
    public_url: str,
    next_path: str | None,
    *,
    purpose: str = LOGIN,
) -> Started:
    """The IdP URL carrying a signed AuthnRequest (HTTP-Redirect); its id is stored with where
    the user wanted to go (a same-site path only), to be claimed once by the response."""
    login_path = f"/sso/saml/{idp.slug}/login"
    auth = OneLogin_Saml2_Auth(
        _request_data(public_url, login_path), old_settings=settings(session, idp, public_url)
    )
    # RelayState: the declared resource URL (GAR wants it back as it is); never read.
    url: str = auth.login(return_to=sp_base(public_url, idp) + "/login")
    now = utcnow()
    session.add(
        SamlRequest(
            request_id=auth.get_last_request_id(),
            idp_id=idp.id,
            next_path=safe_next(next_path),
            purpose=purpose,
            created_at=now,
            expires_at=now + REQUEST_LIFETIME,
        )
    )
    session.flush()
    return Started(url, auth.get_last_request_id())


def safe_next(value: str | None) -> str | None:
    """A path on this site, or nothing (never another host, never a scheme)."""
    if not value or len(value) > 512 or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 32 for c in value):
        return None
    return value


# -- assertion consumer service ---------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A response whose every check passed: the attributes it carries, and what the request
    that it answers wanted."""

    attributes: dict[str, list[str]]
    next_path: str | None
    purpose: str


def _in_response_to(encoded: str) -> str | None:
    try:
        document = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        raise Refused("malformed", "SAMLResponse is not base64") from None
    try:
        root = OneLogin_Saml2_XML.to_etree(document)  # DOCTYPE and entities refused
    except Exception as error:
        raise Refused(
            "malformed", f"not a readable XML document ({type(error).__name__})"
        ) from None
    if OneLogin_Saml2_XML.query(root, "/samlp:Response") == []:
        raise Refused("malformed", "not a samlp:Response")
    value = root.get("InResponseTo")
    if value:
        return str(value)
    # A response whose root lost its InResponseTo still answers the request its (signed)
    # assertion names: that request is claimed, never skipped as an unsolicited response.
    confirmations = OneLogin_Saml2_XML.query(
        root,
        "/samlp:Response/saml:Assertion/saml:Subject/saml:SubjectConfirmation/"
        "saml:SubjectConfirmationData[@InResponseTo]",
    )
    return str(confirmations[0].get("InResponseTo")) if confirmations else None


def _claim_request(
    session: Session, idp: SamlIdentityProvider, request_id: str
) -> tuple[str | None, str]:
    now = utcnow()
    claimed = session.execute(
        update(SamlRequest)
        .where(
            SamlRequest.request_id == request_id[:128],
            SamlRequest.idp_id == idp.id,
            SamlRequest.used_at.is_(None),
            SamlRequest.expires_at > now,
        )
        .values(used_at=now)
        .returning(SamlRequest.next_path, SamlRequest.purpose)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if claimed is None:
        raise Refused("unknown_request", "InResponseTo names no pending request of ours")
    return claimed.next_path, claimed.purpose


def consume(
    session: Session,
    idp: SamlIdentityProvider,
    form: dict[str, str],
    public_url: str,
    *,
    started_here: Callable[[str], bool],
) -> Accepted:
    """Check a POSTed response and its assertion; the user it names, or `Refused`.
    `started_here(request_id)` says whether this browser sent that request (its cookie)."""
    encoded = form.get("SAMLResponse", "")
    if not encoded:
        raise Refused("malformed", "no SAMLResponse")
    if len(encoded) > RESPONSE_MAX_BYTES:
        raise Refused("too_large", f"{len(encoded)} bytes")
    request_id = _in_response_to(encoded)
    next_path: str | None = None
    purpose = LOGIN
    if request_id is not None:
        if not started_here(request_id):
            raise Refused("other_browser", "no cookie of the request in this browser")
        next_path, purpose = _claim_request(session, idp, request_id)
    elif not idp.allow_idp_initiated:
        raise Refused("unsolicited", "no InResponseTo and IdP-initiated login is off")
    auth = OneLogin_Saml2_Auth(
        _request_data(public_url, f"/sso/saml/{idp.slug}/acs", {"SAMLResponse": encoded}),
        old_settings=settings(session, idp, public_url),
    )
    try:
        auth.process_response(request_id=request_id)
    except Exception as error:
        raise Refused("invalid", f"{type(error).__name__}: {str(error)[:200]}") from None
    if auth.get_errors() or not auth.is_authenticated():
        raise Refused("invalid", str(auth.get_last_error_reason() or auth.get_errors())[:300])
    _remember_assertion(session, idp, auth)
    attributes = {
        str(name): [str(v) for v in values if v is not None]
        for name, values in (auth.get_attributes() or {}).items()
    }
    return Accepted(attributes, next_path, purpose)


def _valid_until(auth: Any) -> dt.datetime:
    """The latest moment the assertion could still be accepted: its Conditions' and its
    subject confirmation's NotOnOrAfter, whichever is later. An assertion with neither is
    refused (it could be replayed for ever)."""
    moments = []
    confirmation = auth.get_last_assertion_not_on_or_after()
    if confirmation:
        moments.append(dt.datetime.fromtimestamp(confirmation, dt.UTC))
    document = OneLogin_Saml2_XML.to_etree(auth.get_last_response_xml())
    for node in OneLogin_Saml2_XML.query(
        document, "/samlp:Response/saml:Assertion/saml:Conditions[@NotOnOrAfter]"
    ):
        value = str(node.get("NotOnOrAfter")).replace("Z", "+00:00")
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise Refused("invalid", "Conditions NotOnOrAfter is not a date") from None
        moments.append(moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC))
    if not moments:
        raise Refused("invalid", "the assertion never expires (no NotOnOrAfter)")
    return max(moments)


def _remember_assertion(session: Session, idp: SamlIdentityProvider, auth: Any) -> None:
    assertion_id = auth.get_last_assertion_id()
    if not assertion_id:
        raise Refused("invalid", "no assertion id")
    now = utcnow()
    values = {
        "idp_id": idp.id,
        "assertion_id": str(assertion_id)[:256],
        "expires_at": max(_valid_until(auth), now) + SKEW,
    }
    if insert_new(session, SamlSeenAssertion, ["idp_id", "assertion_id"], values) is None:
        raise Refused("replayed", "assertion id seen before")


# -- attribute mapping ----------------------------------------------------------------------------


def _first(attributes: dict[str, list[str]], *names: str) -> str:
    for name in names:
        for value in attributes.get(name, []):
            cleaned = " ".join(value.split())
            if cleaned:
                return cleaned
    return ""


def _all(attributes: dict[str, list[str]], name: str) -> list[str]:
    found: list[str] = []
    for value in attributes.get(name, []):
        for part in value.split("##") if "##" in value else [value]:  # GAR: "code##label"
            cleaned = " ".join(part.split())
            if cleaned and cleaned not in found:
                found.append(cleaned)
                break
    return found[:50]


def _fold(value: str) -> str:
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()


def read_user(mapping: AttributeMapping, attributes: dict[str, list[str]]) -> SamlUser:
    """The user an assertion names, through the IdP's mapping; `Refused` when the attributes
    the mapping needs are missing or name a profile Parcours does not serve."""
    if mapping is AttributeMapping.GAR:
        ido = _first(attributes, "IDO")
        if not ido:
            raise Refused("attributes", "no IDO")
        profiles = {_fold(p) for p in attributes.get("PRO", []) if p}
        if profiles & GAR_STUDENT:
            role = "student"
        elif profiles & GAR_TEACHER:
            role = "teacher"
        else:
            raise Refused("profile", f"PRO {sorted(profiles)[:3]}")
        uais = [u.upper() for u in _all(attributes, "UAI")]
        uai = uais[0] if uais else None
        if uai is None:
            raise Refused("attributes", "no UAI")
        return SamlUser(
            external_id=ido,
            role=role,
            first_name=_first(attributes, "PRE"),
            last_name=_first(attributes, "NOM"),
            email=(_first(attributes, "P_MEL") or None) if role == "teacher" else None,
            uai=uai,
            uais=uais,
            classes=_all(attributes, "DIV"),
            groups=_all(attributes, "GRO"),
        )
    names = GENERIC_NAMES
    external_id = _first(attributes, *names["id"])
    if not external_id:
        raise Refused("attributes", "no eduPersonPrincipalName or uid")
    affiliations = {_fold(a) for n in names["affiliation"] for a in attributes.get(n, [])}
    role = (
        "teacher" if affiliations & GENERIC_TEACHER and "student" not in affiliations else "student"
    )
    return SamlUser(
        external_id=external_id,
        role=role,
        first_name=_first(attributes, *names["first_name"]),
        last_name=_first(attributes, *names["last_name"]),
        email=_first(attributes, *names["email"]) or None,
        uai=None,
    )
