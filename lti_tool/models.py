"""LMS platforms registered with the tool (LTI 1.3), keyed by issuer and client id.

One issuer may hold many client ids (Canvas uses one issuer for every customer), so a
registration is the pair (issuer, client_id); its deployments are the places it is installed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from config.db import Base, UTCDateTime, utcnow


class LtiPlatform(Base):
    __tablename__ = "lti_platforms"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    issuer: Mapped[str] = mapped_column(String(512))
    client_id: Mapped[str] = mapped_column(String(255))
    auth_login_url: Mapped[str] = mapped_column(String(1024))
    auth_token_url: Mapped[str] = mapped_column(String(1024))
    key_set_url: Mapped[str] = mapped_column(String(1024))
    # `aud` of OAuth2 client assertions when the platform wants something else than the token URL.
    audience: Mapped[str | None] = mapped_column(String(1024))
    # Space-separated origins that frame our pages when they differ from the issuer's and the
    # login URL's (Canvas: the school's own instructure domain).
    frame_origins: Mapped[str] = mapped_column(String(2048), default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    deployments: Mapped[list[LtiDeployment]] = relationship(
        back_populates="platform", cascade="all, delete-orphan"
    )

    __table_args__ = (UniqueConstraint("issuer", "client_id"),)


class LtiDeployment(Base):
    __tablename__ = "lti_deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    platform: Mapped[LtiPlatform] = relationship(back_populates="deployments")

    __table_args__ = (UniqueConstraint("platform_id", "deployment_id"),)
