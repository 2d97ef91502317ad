"""Rate limits on guessable things (passwords, campaign codes), shared by every process.

Counters live in the database in fixed windows: one atomic upsert per hit, so any number of
workers on any number of hosts see the same count. Keys are hashed: they may contain e-mails or
IP addresses, which have no business being stored in clear for this.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import Integer, String, delete
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


def _key_hash(limit: Limit, key: str) -> str:
    return hashlib.sha256(f"{limit.name}\x00{key}".encode()).hexdigest()


def _window_start(now: dt.datetime, window: dt.timedelta) -> dt.datetime:
    seconds = int(window.total_seconds())
    epoch = int(now.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, tz=dt.UTC)


def hit(session: Session, limit: Limit, key: str, *, now: dt.datetime | None = None) -> Verdict:
    """Count one attempt for `key` and say whether it is within the limit."""
    now = now or utcnow()
    start = _window_start(now, limit.window)
    values = {"key_hash": _key_hash(limit, key), "window_start": start, "hits": 1}
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


def is_blocked(session: Session, limit: Limit, key: str, *, now: dt.datetime | None = None) -> bool:
    """Whether `key` already used up its attempts, without counting one more."""
    now = now or utcnow()
    counter = session.get(
        RateLimitCounter, (_key_hash(limit, key), _window_start(now, limit.window))
    )
    return counter is not None and counter.hits >= limit.max_hits


def purge_expired(session: Session, *, older_than: dt.timedelta = dt.timedelta(days=1)) -> int:
    statement = delete(RateLimitCounter).where(
        RateLimitCounter.window_start < utcnow() - older_than
    )
    return execute_dml(session, statement).rowcount
