"""Assignment and Grade Services 2.0 over HTTP: OAuth2 access tokens, line items and scores.

pylti1p3's ServiceConnector does this too, but sets no timeouts, lowercases the URLs of `Link`
headers (paging then asks for pages that do not exist) and caches tokens in process memory. Here:

- every call times out (`lti_tool.http.TIMEOUT`), so a job always ends within its lease;
- a token lives in `lti_access_tokens`, per platform and scope set, until shortly before it
  expires: every worker and process uses it, so a thousand scores cost one token request; on
  PostgreSQL one worker asks for it while the others wait on an advisory lock, then read it;
- the session is committed before each call (`_idle`): no transaction, and on SQLite no write
  lock, is held while a platform takes its time. Callers hand over a session holding nothing
  they would not commit (reads, a token, a line item just created).

Failures raise `PlatformError`, whose `retry` says whether trying later may help: timeouts,
refused connections, 5xx, 408, 409 and 429 may; any other refusal will not.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import jwt
import requests
from requests.utils import parse_header_links
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from config.db import execute_dml, insert_new, utcnow
from lti_tool import keys
from lti_tool.http import TIMEOUT, TimeoutSession
from lti_tool.models import LtiAccessToken, LtiPlatform

TOKEN_MARGIN = dt.timedelta(seconds=60)  # a token this close to its end is not used any more
DEFAULT_TOKEN_LIFETIME = 3600  # seconds, when the platform does not say
ASSERTION_LIFETIME = 60  # seconds
MAX_PAGES = 100  # of a line item container: a platform that pages forever is cut short
DETAIL_LENGTH = 160

SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCORE_SCOPE = SCOPE + "score"
LINEITEM_SCOPE = SCOPE + "lineitem"
LINEITEM_READ_SCOPE = SCOPE + "lineitem.readonly"
USED_SCOPES = frozenset({SCORE_SCOPE, LINEITEM_SCOPE, LINEITEM_READ_SCOPE})

SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TRY_AGAIN = frozenset({408, 409, 429})  # 409: Moodle's "a newer score is on record"


class PlatformError(Exception):
    """A call to the platform failed. The message names the call and the HTTP status, never a
    token; `retry` says whether trying later may help, `delay` when the platform said when."""

    def __init__(
        self,
        message: str,
        *,
        retry: bool,
        status: int | None = None,
        delay: dt.timedelta | None = None,
    ) -> None:
        super().__init__(message)
        self.retry = retry
        self.status = status
        self.delay = delay


def token_scopes(granted: list[str] | None) -> str:
    """The scopes to ask a token for: those of AGS we use that the platform granted, sorted and
    space-separated (the cache key: links granted the same scopes share one token)."""
    return " ".join(sorted(USED_SCOPES.intersection(granted or [])))


def scores_url(lineitem_url: str) -> str:
    """`<lineitem>/scores`, inserted before the query (Moodle's line items carry `?type_id=`)."""
    parts = urlsplit(lineitem_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def _idle(session: Session) -> None:
    """End the session's transaction before a call to a platform (see the module's doc)."""
    session.commit()


def _detail(response: requests.Response) -> str:
    text = " ".join(response.text.split())[:DETAIL_LENGTH] if response.text else ""
    return f": {text}" if text else ""


def _retry_after(response: requests.Response) -> dt.timedelta | None:
    value = response.headers.get("Retry-After", "")
    return dt.timedelta(seconds=min(int(value), 3600)) if value.isdecimal() else None


def _check(response: requests.Response, what: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    retry = status >= 500 or status in TRY_AGAIN
    raise PlatformError(
        f"{what}: HTTP {status}{_detail(response)}",
        retry=retry,
        status=status,
        delay=_retry_after(response) if retry else None,
    )


def _json(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise PlatformError(f"{what}: the answer is not JSON", retry=True) from None


# -- access tokens --------------------------------------------------------------------------------


def client_assertion(session: Session, platform: LtiPlatform) -> str:
    """The signed JWT that authenticates us at the token endpoint (RFC 7523)."""
    key = keys.signing_key(session)
    now = int(time.time())
    claims = {
        "iss": platform.client_id,
        "sub": platform.client_id,
        "aud": platform.audience or platform.auth_token_url,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(
        claims, key.private_key_pem, algorithm=keys.ALGORITHM, headers={"kid": key.kid}
    )


def cached_token(session: Session, platform: LtiPlatform, scopes: str) -> str | None:
    return session.scalar(
        select(LtiAccessToken.token).where(
            LtiAccessToken.platform_id == platform.id,
            LtiAccessToken.scopes == scopes,
            LtiAccessToken.expires_at > utcnow() + TOKEN_MARGIN,
        )
    )


def access_token(
    session: Session, http: requests.Session, platform: LtiPlatform, scopes: str
) -> str:
    """A valid token for `scopes`: the cached one, else a new one, cached for everyone."""
    token = cached_token(session, platform, scopes)
    if token is not None:
        return token
    _idle(session)
    with _one_asker(session, platform, scopes):
        token = cached_token(session, platform, scopes)  # fetched while we waited?
        if token is not None:
            return token
        return _request_token(session, http, platform, scopes)


TOKEN_LOCKS = 0x4C544B  # advisory lock namespace: "LTK"


@contextmanager
def _one_asker(session: Session, platform: LtiPlatform, scopes: str) -> Iterator[None]:
    """On PostgreSQL, hold an advisory lock per platform and scope set while asking for a token,
    so that workers starting together make one request, not one each. The lock lives on a
    connection of its own in autocommit: no transaction stays open during the call, and the
    session is free to commit. SQLite deployments run a single writer: no lock needed."""
    engine = session.get_bind().engine
    if engine.dialect.name != "postgresql":
        yield
        return
    key = zlib.crc32(f"{platform.id} {scopes}".encode()) - 2**31  # a signed 32-bit int
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        lock.execute(select(func.pg_advisory_lock(TOKEN_LOCKS, key)))
        try:
            yield
        finally:
            lock.execute(select(func.pg_advisory_unlock(TOKEN_LOCKS, key)))


def _request_token(
    session: Session, http: requests.Session, platform: LtiPlatform, scopes: str
) -> str:
    assertion = client_assertion(session, platform)
    _idle(session)
    what = "token request"
    try:
        response = http.post(
            platform.auth_token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
                "scope": scopes,
            },
            headers={"Accept": "application/json"},
            timeout=TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as error:
        raise PlatformError(f"{what}: {type(error).__name__}", retry=True) from None
    _check(response, what)
    body = _json(response, what)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise PlatformError(f"{what}: no access_token in the answer", retry=True)
    lifetime = body.get("expires_in")
    if not isinstance(lifetime, int) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    expires_at = utcnow() + dt.timedelta(seconds=lifetime)
    _store_token(session, platform, scopes, token, expires_at)
    return token


def _store_token(
    session: Session, platform: LtiPlatform, scopes: str, token: str, expires_at: dt.datetime
) -> None:
    values = {
        "platform_id": platform.id,
        "scopes": scopes,
        "token": token,
        "expires_at": expires_at,
    }
    if insert_new(session, LtiAccessToken, ["platform_id", "scopes"], values) is None:
        execute_dml(
            session,
            update(LtiAccessToken)
            .where(LtiAccessToken.platform_id == platform.id, LtiAccessToken.scopes == scopes)
            .values(token=token, expires_at=expires_at)
            .execution_options(synchronize_session=False),
        )
    session.commit()


def forget_token(session: Session, platform: LtiPlatform, scopes: str, token: str) -> None:
    """Drop a token the platform refused (unless another worker already replaced it)."""
    execute_dml(
        session,
        delete(LtiAccessToken)
        .where(
            LtiAccessToken.platform_id == platform.id,
            LtiAccessToken.scopes == scopes,
            LtiAccessToken.token == token,
        )
        .execution_options(synchronize_session=False),
    )
    session.commit()


# -- services -------------------------------------------------------------------------------------


class Client:
    """AGS calls to one platform with one scope set; a context manager (it holds a connection
    pool)."""

    def __init__(self, session: Session, platform: LtiPlatform, scopes: str) -> None:
        self.session = session
        self.platform = platform
        self.scopes = scopes
        self.http = TimeoutSession()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def _call(
        self, method: str, url: str, what: str, *, body: Any = None, media: str, accept: str
    ) -> requests.Response:
        """One authorized call: on a 401, the token is dropped and the call made once more
        with a new one (the platform revoked it, or forgot it in a restart)."""
        token, response = self._send(method, url, what, body, media, accept)
        if response.status_code == 401:
            forget_token(self.session, self.platform, self.scopes, token)
            _, response = self._send(method, url, what, body, media, accept)
        _check(response, what)
        return response

    def _send(
        self, method: str, url: str, what: str, body: Any, media: str, accept: str
    ) -> tuple[str, requests.Response]:
        token = access_token(self.session, self.http, self.platform, self.scopes)
        _idle(self.session)
        headers = {"Authorization": f"Bearer {token}", "Accept": accept}
        data = None
        if body is not None:
            headers["Content-Type"] = media
            data = json.dumps(body)
        try:
            response: requests.Response = self.http.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=TIMEOUT,
                allow_redirects=method == "GET",  # a redirected POST would turn into a GET
            )
        except requests.RequestException as error:
            raise PlatformError(f"{what}: {type(error).__name__}", retry=True) from None
        return token, response

    def pages(self, url: str, what: str, *, accept: str) -> Iterator[Any]:
        """The decoded JSON of each page of a paged GET (`Link: <…>; rel="next"`, URLs kept as
        given), at most `MAX_PAGES`."""
        next_url: str | None = url
        seen: set[str] = set()
        while next_url is not None and next_url not in seen and len(seen) < MAX_PAGES:
            seen.add(next_url)
            response = self._call("GET", next_url, what, media="", accept=accept)
            yield _json(response, what)
            next_url = _next_page(response, next_url)

    def post_score(self, lineitem_url: str, score: dict[str, Any]) -> None:
        self._call(
            "POST", scores_url(lineitem_url), "score", body=score, media=SCORE_TYPE, accept="*/*"
        )

    def line_items(self, lineitems_url: str, **filters: str) -> Iterator[dict[str, Any]]:
        """The container's line items, page after page (`Link: <…>; rel="next"`, URLs kept as
        given: they are case-sensitive)."""
        url: str | None = with_query(lineitems_url, **filters) if filters else lineitems_url
        seen: set[str] = set()
        while url is not None and url not in seen and len(seen) < MAX_PAGES:
            seen.add(url)
            response = self._call("GET", url, "line items", media="", accept=LINEITEMS_TYPE)
            page = _json(response, "line items")
            if not isinstance(page, list):
                raise PlatformError("line items: the answer is not a list", retry=True)
            yield from (item for item in page if isinstance(item, dict))
            url = _next_page(response, url)

    def create_line_item(self, lineitems_url: str, item: dict[str, Any]) -> str:
        """Add a line item; its URL (`id`)."""
        what = "line item creation"
        response = self._call(
            "POST", lineitems_url, what, body=item, media=LINEITEM_TYPE, accept=LINEITEM_TYPE
        )
        created = _json(response, what)
        url = created.get("id") if isinstance(created, dict) else None
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise PlatformError(f"{what}: no line item URL in the answer", retry=False)
        return url


def _next_page(response: requests.Response, url: str) -> str | None:
    header = response.headers.get("Link")
    if not header:
        return None
    for link in parse_header_links(header):
        if "next" in link.get("rel", "").lower().split() and link.get("url"):
            return urljoin(url, link["url"])
    return None
