"""HTTP to platforms: every call has a timeout, and platform keys are cached in the database.

A platform's JWKS is read from `lti_platforms.jwks` and fetched again only when a launch names a
`kid` it does not hold (the platform rotated its key), at most once per `REFETCH_AFTER`, so
random kids cannot make us hammer the platform.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests
from sqlalchemy.orm import Session

from config.db import utcnow
from lti_tool.models import LtiPlatform

TIMEOUT = (3.05, 10)  # seconds to connect, to read
REFETCH_AFTER = dt.timedelta(seconds=30)
USER_AGENT = "Parcours-LTI/1.3"


class PlatformUnreachable(Exception):
    """The platform did not answer, or answered something unusable."""


class TimeoutSession(requests.Session):
    """A requests session whose calls time out unless told otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.headers["User-Agent"] = USER_AGENT

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(method, url, *args, **kwargs)


def fetch_jwks(http: requests.Session, url: str) -> dict[str, Any]:
    try:
        response = http.get(url)
        response.raise_for_status()
        keys = response.json()
    except (requests.RequestException, ValueError) as error:
        raise PlatformUnreachable(f"cannot read the key set at {url}: {error}") from None
    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
        raise PlatformUnreachable(f"the key set at {url} is not a JWKS")
    return keys


def platform_key(
    session: Session, http: requests.Session, platform: LtiPlatform, kid: str
) -> dict[str, Any] | None:
    """The platform's public key `kid` (a JWK), from the cache or, when unknown, a new fetch."""
    for key in (platform.jwks or {}).get("keys", []):
        if key.get("kid") == kid:
            return dict(key)
    fetched_at = platform.jwks_fetched_at
    if fetched_at is not None and utcnow() - fetched_at < REFETCH_AFTER:
        return None
    platform.jwks = fetch_jwks(http, platform.key_set_url)
    platform.jwks_fetched_at = utcnow()
    session.flush()
    for key in platform.jwks["keys"]:
        if isinstance(key, dict) and key.get("kid") == kid:
            return dict(key)
    return None
