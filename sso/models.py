"""The SAML connector's tables: identity providers (each with its metadata, certificates,
attribute mapping and the organizations it may sign users into), our service-provider keys, the
authentication requests we sent (used once), the assertions we accepted (refused if seen again,
until they expire) and recent events for `/admin`.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from config.db import Base, JSONDocument, UTCDateTime, enum_type, utcnow

URL_LENGTH = 1024


class AttributeMapping(enum.StrEnum):
    GAR = "gar"  # IDO, PRE, NOM, UAI, PRO, DIV, GRO, P_MEL
    GENERIC = "generic"  # standard eduPerson / SCHAC / LDAP names


class SamlIdentityProvider(Base):
    """An identity provider users sign in through, known by its slug in our URLs."""

    __tablename__ = "saml_identity_providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255), default="", server_default="")
    entity_id: Mapped[str] = mapped_column(String(URL_LENGTH))
    sso_url: Mapped[str] = mapped_column(String(URL_LENGTH))
    # Signing certificates (base64 DER, no PEM armour): several during a rollover.
    certificates: Mapped[list[str]] = mapped_column(JSONDocument)
    # The last metadata document that was valid, and where it is fetched again from.
    metadata_xml: Mapped[str] = mapped_column(Text)
    metadata_url: Mapped[str | None] = mapped_column(String(URL_LENGTH))
    metadata_fetched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    metadata_valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    metadata_error: Mapped[str | None] = mapped_column(Text)  # the last refresh's, if it failed
    mapping: Mapped[AttributeMapping] = mapped_column(
        enum_type(AttributeMapping, "saml_attribute_mapping"), default=AttributeMapping.GAR
    )
    # Unsolicited responses (no InResponseTo) are refused unless this is on.
    allow_idp_initiated: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    organizations: Mapped[list[SamlIdpOrganization]] = relationship(
        back_populates="idp", cascade="all, delete-orphan", order_by="SamlIdpOrganization.id"
    )


class SamlIdpOrganization(Base):
    """An organization an identity provider may sign users into (GAR: found by its UAI)."""

    __tablename__ = "saml_idp_organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    idp_id: Mapped[int] = mapped_column(
        ForeignKey("saml_identity_providers.id", ondelete="CASCADE")
    )
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )

    idp: Mapped[SamlIdentityProvider] = relationship(back_populates="organizations")

    __table_args__ = (UniqueConstraint("idp_id", "organization_id"),)


class SamlSpKey(Base):
    """Our service-provider key and certificate, kept in the database so every process signs
    with the same one (`sso.keys`: which signs and which are listed follows from `created_at`)."""

    __tablename__ = "saml_sp_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    private_key_pem: Mapped[str] = mapped_column(Text)
    certificate_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SamlRequest(Base):
    """An AuthnRequest we sent: its id is used once, by the response that answers it, and keeps
    where the user wanted to go (never taken from RelayState)."""

    __tablename__ = "saml_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    idp_id: Mapped[int] = mapped_column(
        ForeignKey("saml_identity_providers.id", ondelete="CASCADE")
    )
    next_path: Mapped[str | None] = mapped_column(String(512))
    # "login", or "test": an administrator's connection test (nobody is signed in).
    purpose: Mapped[str] = mapped_column(String(16), default="login", server_default="login")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SamlSeenAssertion(Base):
    """An assertion we accepted: the same id is refused until it expires (every process)."""

    __tablename__ = "saml_seen_assertions"

    id: Mapped[int] = mapped_column(primary_key=True)
    idp_id: Mapped[int] = mapped_column(
        ForeignKey("saml_identity_providers.id", ondelete="CASCADE")
    )
    assertion_id: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)

    __table_args__ = (UniqueConstraint("idp_id", "assertion_id"),)


class SamlEventKind(enum.StrEnum):
    LOGIN = "LOGIN"
    REFUSED = "REFUSED"
    METADATA = "METADATA"


class SamlEvent(Base):
    """What `/admin` shows of an identity provider: last logins, refusals, metadata refreshes.
    Never an assertion, an attribute value or an identifier in clear."""

    __tablename__ = "saml_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    idp_id: Mapped[int | None] = mapped_column(
        ForeignKey("saml_identity_providers.id", ondelete="CASCADE")
    )
    kind: Mapped[SamlEventKind] = mapped_column(enum_type(SamlEventKind, "saml_event_kind"))
    summary: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_saml_events_idp_id_created_at", "idp_id", "created_at"),)


class SamlPendingMatch(Base):
    """A student the IdP vouched for whose identity Parcours does not know yet, kept here (the
    browser holds only a random token) while they type their birth date: no account exists
    until they are matched with the learner list or choose to go on without."""

    __tablename__ = "saml_pending_matches"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    idp_id: Mapped[int] = mapped_column(
        ForeignKey("saml_identity_providers.id", ondelete="CASCADE")
    )
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # What the assertion said: the identity and attributes the mapping read.
    identity: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    next_path: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
