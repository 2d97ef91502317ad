"""Identity providers: registered from their metadata (a file or a URL), refreshed from their URL
(a document that does not parse, has no signing certificate or has expired is refused and the
last good copy stays), attached to the organizations they may sign users into.

Functions take the session first, flush and never commit. Bad input raises `InvalidInput` or
`AlreadyExists` with a `code` naming the field.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import validate_url
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import connectors
from campaigns.connectors import AlreadyExists, InvalidInput, Organization
from config.db import utcnow
from sso import keys
from sso.models import (
    AttributeMapping,
    SamlEvent,
    SamlEventKind,
    SamlIdentityProvider,
    SamlIdpOrganization,
)

log = logging.getLogger(__name__)

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
METADATA_MAX_BYTES = 2 * 1024 * 1024  # federation files hold one entity here, not thousands
TIMEOUT = (3.05, 15)
USER_AGENT = "Parcours-SAML/2.0"
REFRESH_EVERY = dt.timedelta(hours=6)


@dataclass(frozen=True)
class IdpMetadata:
    """What Parcours needs of an identity provider's metadata."""

    entity_id: str
    sso_url: str
    certificates: list[str]  # signing certificates, base64 DER
    valid_until: dt.datetime | None


def _valid_until(document: bytes) -> dt.datetime | None:
    root = OneLogin_Saml2_XML.to_etree(document)
    value = root.get("validUntil")
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("metadata: validUntil is not a date", code="metadata") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def parse_metadata(document: str | bytes, entity_id: str | None = None) -> IdpMetadata:
    """Read an IdP metadata document (DOCTYPEs refused) or raise `InvalidInput`; with
    `entity_id`, the entity of that id only (a federation file holds many)."""
    raw = document.encode() if isinstance(document, str) else document
    if len(raw) > METADATA_MAX_BYTES:
        raise InvalidInput("metadata: the document is too large", code="metadata")
    try:
        parsed: dict[str, Any] = OneLogin_Saml2_IdPMetadataParser.parse(
            raw,
            required_sso_binding=OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
            entity_id=entity_id,
        )
        valid_until = _valid_until(raw)
    except InvalidInput:
        raise
    except Exception:  # lxml, defusedxml and the parser raise many kinds: all mean unreadable
        raise InvalidInput(
            "metadata: not a readable SAML metadata document", code="metadata"
        ) from None
    idp = parsed.get("idp") or {}
    found_id = idp.get("entityId")
    sso_url = (idp.get("singleSignOnService") or {}).get("url")
    if not found_id or (entity_id is not None and found_id != entity_id):
        raise InvalidInput("metadata: no identity provider (IDPSSODescriptor)", code="metadata")
    if not sso_url or not str(sso_url).startswith(("https://", "http://")):
        raise InvalidInput("metadata: no HTTP-Redirect SingleSignOnService", code="metadata")
    if not validate_url(str(sso_url)):  # what python3-saml's settings will demand
        raise InvalidInput("metadata: the SingleSignOnService URL is not valid", code="metadata")
    if idp.get("x509cert"):
        certificates = [idp["x509cert"]]
    else:
        certificates = list((idp.get("x509certMulti") or {}).get("signing") or [])
    if not certificates:
        raise InvalidInput("metadata: no signing certificate", code="metadata")
    for certificate in certificates:
        try:
            x509.load_der_x509_certificate(_der(certificate))
        except ValueError:
            raise InvalidInput("metadata: a certificate does not parse", code="metadata") from None
    if valid_until is not None and valid_until <= utcnow():
        raise InvalidInput(f"metadata: expired on {valid_until:%Y-%m-%d}", code="metadata")
    return IdpMetadata(str(found_id), str(sso_url), certificates, valid_until)


def _der(certificate: str) -> bytes:
    return base64.b64decode("".join(certificate.split()), validate=True)


def check_metadata_url(url: str) -> None:
    """https, or http on this machine (development); `InvalidInput` otherwise."""
    try:
        parts = urlsplit(url)
        local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
        valid = bool(parts.hostname) and (parts.scheme == "https" or local)
    except ValueError:
        valid = False
    if not valid:
        raise InvalidInput("metadata URL: https:// only", code="metadata_url")


def fetch_metadata(http: requests.Session, url: str) -> bytes:
    """The document at `url` (https, or http on this machine for development), size-capped."""
    check_metadata_url(url)
    try:
        with http.get(
            url,
            timeout=TIMEOUT,
            stream=True,
            allow_redirects=False,  # never from https to somewhere else
            headers={"User-Agent": USER_AGENT},
        ) as response:
            if response.is_redirect:
                raise InvalidInput(
                    "metadata URL: it redirects elsewhere (give the final URL)",
                    code="metadata_url",
                )
            response.raise_for_status()
            chunks, size = [], 0
            for chunk in response.iter_content(65536):
                size += len(chunk)
                if size > METADATA_MAX_BYTES:
                    raise InvalidInput("metadata: the document is too large", code="metadata")
                chunks.append(chunk)
    except requests.RequestException as error:
        raise InvalidInput(
            f"metadata URL: cannot fetch it ({type(error).__name__})", code="metadata_url"
        ) from None
    return b"".join(chunks)


def find_idp(session: Session, slug: str) -> SamlIdentityProvider | None:
    if not SLUG.fullmatch(slug or ""):
        return None
    return session.scalars(
        select(SamlIdentityProvider).where(SamlIdentityProvider.slug == slug)
    ).one_or_none()


def _apply(idp: SamlIdentityProvider, metadata: IdpMetadata, document: bytes) -> None:
    idp.entity_id = metadata.entity_id
    idp.sso_url = metadata.sso_url
    idp.certificates = metadata.certificates
    idp.metadata_xml = document.decode("utf-8", errors="replace")
    idp.metadata_valid_until = metadata.valid_until
    idp.metadata_fetched_at = utcnow()
    idp.metadata_error = None


def add_idp(
    session: Session,
    *,
    slug: str,
    metadata: bytes,
    metadata_url: str | None = None,
    name: str = "",
    mapping: AttributeMapping = AttributeMapping.GAR,
    organizations: list[Organization] | None = None,
    allow_idp_initiated: bool = False,
) -> SamlIdentityProvider:
    """Register an identity provider from its metadata document."""
    slug = (slug or "").strip().lower()
    if not SLUG.fullmatch(slug):
        raise InvalidInput("slug: 1 to 64 lowercase letters, digits and inner hyphens", code="slug")
    if find_idp(session, slug) is not None:
        raise AlreadyExists(f"slug: an identity provider is already called {slug!r}", code="slug")
    parsed = parse_metadata(metadata)
    idp = SamlIdentityProvider(
        slug=slug,
        name=" ".join((name or "").split())[:255] or parsed.entity_id[:255],
        mapping=mapping,
        metadata_url=metadata_url,
        allow_idp_initiated=allow_idp_initiated,
    )
    _apply(idp, parsed, metadata)
    for organization in organizations or []:
        idp.organizations.append(SamlIdpOrganization(organization_id=organization.id))
    session.add(idp)
    session.flush()
    keys.key_ring(session, "Parcours")  # our key exists before any login needs it
    sync_gar(session)
    return idp


def refresh_metadata(session: Session, idp: SamlIdentityProvider, http: requests.Session) -> bool:
    """Fetch the IdP's metadata again; a bad document is refused and the last good copy stays
    (the error is kept on the IdP and written as an event). True when it was replaced."""
    if not idp.metadata_url:
        return False
    try:
        document = fetch_metadata(http, idp.metadata_url)
        parsed = parse_metadata(document, entity_id=idp.entity_id)  # the same IdP, pinned
    except InvalidInput as refused:
        idp.metadata_error = str(refused)[:500]
        idp.metadata_fetched_at = utcnow()
        _event(session, idp, SamlEventKind.METADATA, f"refused, old copy kept: {refused}")
        log.warning("SAML metadata of %s refused, old copy kept: %s", idp.slug, refused)
        session.flush()
        return False
    changed = parsed.certificates != idp.certificates or parsed.sso_url != idp.sso_url
    _apply(idp, parsed, document)
    _event(session, idp, SamlEventKind.METADATA, "refreshed" + (" (changed)" if changed else ""))
    session.flush()
    return True


def due_for_refresh(session: Session) -> list[SamlIdentityProvider]:
    cutoff = utcnow() - REFRESH_EVERY
    return list(
        session.scalars(
            select(SamlIdentityProvider).where(
                SamlIdentityProvider.metadata_url.is_not(None),
                SamlIdentityProvider.is_active.is_(True),
                (SamlIdentityProvider.metadata_fetched_at.is_(None))
                | (SamlIdentityProvider.metadata_fetched_at < cutoff),
            )
        )
    )


def organization_ids(session: Session, idp: SamlIdentityProvider) -> set[int]:
    return set(
        session.scalars(
            select(SamlIdpOrganization.organization_id).where(SamlIdpOrganization.idp_id == idp.id)
        )
    )


def _event(
    session: Session, idp: SamlIdentityProvider | None, kind: SamlEventKind, summary: str
) -> None:
    session.add(
        SamlEvent(
            idp_id=idp.id if idp is not None else None,
            kind=kind,
            summary=summary[:500],
            created_at=utcnow(),
        )
    )


def set_organizations(
    session: Session, idp: SamlIdentityProvider, organizations: list[Organization]
) -> bool:
    """Attach exactly `organizations` to the IdP; whether that changed anything."""
    wanted = {organization.id for organization in organizations}
    if wanted == organization_ids(session, idp):
        return False
    idp.organizations[:] = [link for link in idp.organizations if link.organization_id in wanted]
    present = {link.organization_id for link in idp.organizations}
    for organization_id in sorted(wanted - present):
        idp.organizations.append(SamlIdpOrganization(organization_id=organization_id))
    session.flush()
    return True


def update_idp(
    session: Session,
    idp: SamlIdentityProvider,
    *,
    name: str,
    mapping: AttributeMapping,
    allow_idp_initiated: bool,
    metadata_url: str | None,
    organizations: list[Organization],
) -> dict[str, Any]:
    """Change what an administrator may change; the changes, for the audit log."""
    changes: dict[str, Any] = {}
    name = " ".join(name.split())[:255] or idp.entity_id[:255]
    for field, value in (
        ("name", name),
        ("mapping", mapping),
        ("allow_idp_initiated", allow_idp_initiated),
        ("metadata_url", metadata_url or None),
    ):
        before = getattr(idp, field)
        if before != value:
            changes[field] = {"from": str(before), "to": str(value)}
            setattr(idp, field, value)
    if set_organizations(session, idp, organizations):
        changes["organizations"] = sorted(o.id for o in organizations)
    session.flush()
    sync_gar(session)
    return changes


def gar_idp_of(session: Session, organization_id: int) -> SamlIdentityProvider | None:
    """The active GAR identity provider that serves an organization, if any."""
    return session.scalars(
        select(SamlIdentityProvider)
        .join(SamlIdpOrganization, SamlIdpOrganization.idp_id == SamlIdentityProvider.id)
        .where(
            SamlIdpOrganization.organization_id == organization_id,
            SamlIdentityProvider.is_active.is_(True),
            SamlIdentityProvider.mapping == AttributeMapping.GAR,
        )
        .order_by(SamlIdentityProvider.id)
        .limit(1)
    ).first()


def sync_gar(session: Session) -> None:
    """Organizations attached to an active GAR identity provider are marked as served by the
    GAR (no direct link in the panel; students pointed to their ENT); the others are not."""
    served = set(
        session.scalars(
            select(SamlIdpOrganization.organization_id)
            .join(SamlIdentityProvider, SamlIdentityProvider.id == SamlIdpOrganization.idp_id)
            .where(
                SamlIdentityProvider.is_active.is_(True),
                SamlIdentityProvider.mapping == AttributeMapping.GAR,
            )
        )
    )
    connectors.set_gar_organizations(session, served)
