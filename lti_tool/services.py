"""The LTI tool's public API for the rest of Parcours."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.models import LtiPlatform


def platform_origins(session: Session) -> set[str]:
    """Origins (scheme://host[:port]) of every registered LMS: they may frame our pages."""
    origins: set[str] = set()
    rows = session.execute(
        select(LtiPlatform.issuer, LtiPlatform.auth_login_url, LtiPlatform.frame_origins)
    )
    for issuer, login_url, frame_origins in rows:
        for url in (issuer, login_url, *frame_origins.split()):
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.netloc:
                origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins
