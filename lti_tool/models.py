"""The LTI tool's tables: registered platforms and their deployments, our signing keys, login
states, course placements (resource links) and the grades owed to each learner's gradebook.

One issuer may hold many client ids (Canvas uses one issuer for every customer), so a
registration is the pair (issuer, client_id); its deployments are the places it is installed,
each mapped to the Parcours organization whose campaigns it reaches.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from config.db import Base, JSONDocument, UTCDateTime, enum_type, utcnow

URL_LENGTH = 1024


class LtiPlatform(Base):
    """A registration: an LMS (issuer) and the client id it gave us."""

    __tablename__ = "lti_platforms"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="", server_default="")
    issuer: Mapped[str] = mapped_column(String(512))
    client_id: Mapped[str] = mapped_column(String(255))
    auth_login_url: Mapped[str] = mapped_column(String(URL_LENGTH))
    auth_token_url: Mapped[str] = mapped_column(String(URL_LENGTH))
    key_set_url: Mapped[str] = mapped_column(String(URL_LENGTH))
    # `aud` of OAuth2 client assertions when the platform wants something else than the token URL.
    audience: Mapped[str | None] = mapped_column(String(URL_LENGTH))
    # Space-separated origins that frame our pages when they differ from the issuer's and the
    # login URL's (Canvas: the school's own instructure domain).
    frame_origins: Mapped[str] = mapped_column(String(2048), default="", server_default="")
    # Inactive platforms launch nobody (a dynamic registration waits here for an administrator).
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The platform's names are reliable (synchronised from the school's directory, locked for
    # users): a learner's first launch is then matched with the school's learner list, and the
    # same student arriving from the ENT is one user. Off by default: an LMS lets users edit
    # their own names unless its administrator locked them.
    match_learners: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The platform's public keys as last fetched from `key_set_url` (refetched on an unknown kid).
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    jwks_fetched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    deployments: Mapped[list[LtiDeployment]] = relationship(
        back_populates="platform", cascade="all, delete-orphan", order_by="LtiDeployment.id"
    )

    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    @property
    def label(self) -> str:
        return self.name or self.issuer


class LtiDeployment(Base):
    """Where a platform installed the tool (a site, a course category…): its launches reach
    the campaigns of one organization."""

    __tablename__ = "lti_deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(255))
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    platform: Mapped[LtiPlatform] = relationship(back_populates="deployments")

    __table_args__ = (UniqueConstraint("platform_id", "deployment_id"),)


class LtiToolKey(Base):
    """A key pair the tool signs with (deep linking responses, OAuth2 client assertions). The
    newest signs; a superseded key stays published a while for tokens signed before."""

    __tablename__ = "lti_tool_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_key_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class LtiLoginState(Base):
    """An OIDC login we started: its `state` (stored hashed) and `nonce` are used once, by the
    launch that follows within minutes, whatever the browser kept of its cookies (the launch
    from a browser that dropped our state cookie is checked against the platform's storage
    when the login offered one)."""

    __tablename__ = "lti_login_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(64))
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The platform storage frame (`lti_storage_target`) the state and nonce were also put in.
    storage_target: Mapped[str | None] = mapped_column(String(64))


class LtiPendingMatch(Base):
    """A learner's first launch from a platform that matches learners, held (the browser keeps
    only a random token, in the page's address: the LMS frame may drop our cookies) while the
    student types their birth date: no account exists until they are matched with the school's
    learner list or choose to go on without."""

    __tablename__ = "lti_pending_matches"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    resource_link_id: Mapped[int] = mapped_column(
        ForeignKey("lti_resource_links.id", ondelete="CASCADE")
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # What the id_token said: the identity and attributes the launch read.
    identity: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # Whether the browser kept our cookies in the LMS frame (else the launch ends in a new tab);
    # when it did, the hash of the cookie that binds this page to that browser.
    cookies: Mapped[bool] = mapped_column(Boolean, default=True)
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class LtiAccessToken(Base):
    """An OAuth2 access token of a platform for a set of scopes, shared by every worker until
    it expires (one token request per platform and scope set, not one per grade)."""

    __tablename__ = "lti_access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    scopes: Mapped[str] = mapped_column(String(1024))  # sorted, space-separated
    token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("platform_id", "scopes"),)


class LtiResourceLink(Base):
    """A placement of Parcours in a course: the campaign it opens and where its grades go."""

    __tablename__ = "lti_resource_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("lti_deployments.id", ondelete="CASCADE"))
    resource_link_id: Mapped[str] = mapped_column(String(255))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(255), default="", server_default="")
    context_id: Mapped[str | None] = mapped_column(String(255))
    context_title: Mapped[str | None] = mapped_column(String(255))
    # Assignment and Grade Services: the line item of this link (from the launch claim, or
    # found or created through `lineitems_url`) and the scopes the platform granted.
    lineitem_url: Mapped[str | None] = mapped_column(String(URL_LENGTH))
    lineitems_url: Mapped[str | None] = mapped_column(String(URL_LENGTH))
    ags_scopes: Mapped[list[str] | None] = mapped_column(JSONDocument)
    # Names and Role Provisioning: the course's member list.
    memberships_url: Mapped[str | None] = mapped_column(String(URL_LENGTH))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("deployment_id", "resource_link_id"),)


class GradeStatus(enum.StrEnum):
    NONE = "NONE"  # nothing to send yet
    PENDING = "PENDING"  # a job will send the learner's current progress or score
    SENT = "SENT"
    FAILED = "FAILED"  # given up after retries: "renvoyer" queues it again


class LtiLearner(Base):
    """A learner who launched a resource link: their LTI `sub` there, and what their gradebook
    was last sent."""

    __tablename__ = "lti_learners"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_link_id: Mapped[int] = mapped_column(
        ForeignKey("lti_resource_links.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sub: Mapped[str] = mapped_column(String(255))
    first_launch_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_launch_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    grade_status: Mapped[GradeStatus] = mapped_column(
        enum_type(GradeStatus, "lti_grade_status"), default=GradeStatus.NONE
    )
    grade_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_sent_progress: Mapped[str | None] = mapped_column(String(32))
    last_sent_score: Mapped[float | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("resource_link_id", "user_id"),
        Index("ix_lti_learners_grade_status", "grade_status"),
    )


class LtiEventKind(enum.StrEnum):
    LAUNCH = "LAUNCH"
    DEEP_LINK = "DEEP_LINK"
    REFUSED = "REFUSED"  # a launch or login we refused, and why
    GRADE_FAILED = "GRADE_FAILED"
    REGISTERED = "REGISTERED"


class LtiEvent(Base):
    """What happened with a platform lately, for `/admin` (no personal data: identities appear
    as hashes). Old rows are purged by the worker."""

    __tablename__ = "lti_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int | None] = mapped_column(
        ForeignKey("lti_platforms.id", ondelete="CASCADE")
    )
    kind: Mapped[LtiEventKind] = mapped_column(enum_type(LtiEventKind, "lti_event_kind"))
    summary: Mapped[str] = mapped_column(String(500))
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_lti_events_platform_id_created_at", "platform_id", "created_at"),)
