"""Rate limits on guessable things (passwords, campaign codes), shared by every process.

Counters live in the database in fixed windows: one atomic upsert per hit, so any number of
workers on any number of hosts see the same count. For a slow check (a password), count an
attempt *before* checking it (and commit), then `release` it if it turns out fine: parallel
guesses then see each other. For a cheap lookup on a hot path (a campaign code on every page of
the test), refuse first when `exceeded`, then count only the misses. Keys are
keyed hashes (HMAC with the app's secret): they may hold e-mails or IP addresses, which must not
be stored, nor be recoverable by hashing candidates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Integer, String, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from config.db import Base, UTCDateTime, execute_dml, utcnow


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counters"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True)
class Limit:
    name: str
    max_hits: int
    window: dt.timedelta


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    hits: int
    retry_after_seconds: int


def _key_hash(limit: Limit, key: str, secret: str) -> str:
    message = f"{limit.name}\x00{key}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _window_start(now: dt.datetime, window: dt.timedelta) -> dt.datetime:
    seconds = int(window.total_seconds())
    epoch = int(now.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, tz=dt.UTC)


def hit(
    session: Session, limit: Limit, key: str, *, secret: str, now: dt.datetime | None = None
) -> Verdict:
    """Count one attempt for `key` and say whether it is within the limit."""
    now = now or utcnow()
    start = _window_start(now, limit.window)
    values = {"key_hash": _key_hash(limit, key, secret), "window_start": start, "hits": 1}
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(RateLimitCounter)
        .values(values)
        .on_conflict_do_update(
            index_elements=["key_hash", "window_start"],
            set_={"hits": RateLimitCounter.hits + 1},
        )
        .returning(RateLimitCounter.hits)
    )
    hits: int = session.execute(statement).scalar_one()
    retry_after = int((start + limit.window - now).total_seconds()) + 1
    return Verdict(allowed=hits <= limit.max_hits, hits=hits, retry_after_seconds=retry_after)


_COUNTS = select(
    RateLimitCounter.key_hash, RateLimitCounter.window_start, RateLimitCounter.hits
).where(RateLimitCounter.key_hash.in_(bindparam("hashes", expanding=True)))


def exceeded(
    session: Session,
    keys: Sequence[tuple[Limit, str]],
    *,
    secret: str,
    now: dt.datetime | None = None,
) -> bool:
    """Whether any of these (limit, key) has used up its attempts in its current window (a
    read in one query: counts nothing)."""
    now = now or utcnow()
    windows = {
        _key_hash(limit, key, secret): (_window_start(now, limit.window), limit.max_hits)
        for limit, key in keys
    }
    for key_hash, window_start, hits in session.execute(_COUNTS, {"hashes": list(windows)}):
        start, max_hits = windows[key_hash]
        if window_start == start and hits >= max_hits:
            return True
    return False


def release(
    session: Session, limit: Limit, key: str, *, secret: str, now: dt.datetime | None = None
) -> None:
    """Give back an attempt that turned out legitimate."""
    now = now or utcnow()
    execute_dml(
        session,
        update(RateLimitCounter)
        .where(
            RateLimitCounter.key_hash == _key_hash(limit, key, secret),
            RateLimitCounter.window_start == _window_start(now, limit.window),
            RateLimitCounter.hits > 0,
        )
        .values(hits=RateLimitCounter.hits - 1)
        .execution_options(synchronize_session=False),
    )


def purge_expired(session: Session, *, older_than: dt.timedelta = dt.timedelta(days=1)) -> int:
    statement = delete(RateLimitCounter).where(
        RateLimitCounter.window_start < utcnow() - older_than
    )
    return execute_dml(session, statement).rowcount
