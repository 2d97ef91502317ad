"""The LTI tool's public API for the rest of Parcours."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.models import LtiPlatform


def platform_origins(session: Session) -> set[str]:
    """Origins (scheme://host[:port]) of every active registered LMS: they may frame our pages."""
    origins: set[str] = set()
    rows = session.execute(
        select(LtiPlatform.issuer, LtiPlatform.auth_login_url, LtiPlatform.frame_origins).where(
            LtiPlatform.is_active
        )
    )
    for issuer, login_url, frame_origins in rows:
        for url in (issuer, login_url, *frame_origins.split()):
            origin = origin_of(url)
            if origin is not None:
                origins.add(origin)
    return origins


_HOST = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of an http(s) URL, or None for anything that is not plainly one
    (credentials, wildcards, spaces or separators would smuggle sources into a CSP header)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return None
    if not _HOST.match(host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
