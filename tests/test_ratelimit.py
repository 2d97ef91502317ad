import datetime as dt
import hashlib

from sqlalchemy import select

from config.ratelimit import Limit, RateLimitCounter, hit, purge_expired, release

LIMIT = Limit("test", max_hits=3, window=dt.timedelta(minutes=10))
NOON = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
SECRET = "rate-limit-test-secret"


def test_hits_are_counted_per_key_and_window(db_session):
    verdicts = [hit(db_session, LIMIT, "a", secret=SECRET, now=NOON).allowed for _ in range(4)]
    assert verdicts == [True, True, True, False]
    assert hit(db_session, LIMIT, "b", secret=SECRET, now=NOON).allowed
    later = NOON + dt.timedelta(minutes=10)
    assert hit(db_session, LIMIT, "a", secret=SECRET, now=later).hits == 1


def test_released_attempts_are_given_back(db_session):
    for _ in range(3):
        hit(db_session, LIMIT, "a", secret=SECRET, now=NOON)
        release(db_session, LIMIT, "a", secret=SECRET, now=NOON)
    assert hit(db_session, LIMIT, "a", secret=SECRET, now=NOON).hits == 1


def test_retry_after_counts_to_the_end_of_the_window(db_session):
    verdict = hit(db_session, LIMIT, "a", secret=SECRET, now=NOON + dt.timedelta(minutes=4))
    assert verdict.retry_after_seconds == 6 * 60 + 1


def test_keys_are_neither_stored_nor_recoverable_by_plain_hashing(db_session):
    hit(db_session, LIMIT, "eleve@example.org", secret=SECRET, now=NOON)
    stored = db_session.scalars(select(RateLimitCounter.key_hash)).all()
    plain = hashlib.sha256(b"test\x00eleve@example.org").hexdigest()
    assert len(stored) == 1 and "eleve" not in stored[0] and stored[0] != plain


def test_old_windows_are_purged(db_session):
    hit(db_session, LIMIT, "a", secret=SECRET, now=NOON - dt.timedelta(days=3))
    hit(db_session, LIMIT, "a", secret=SECRET)
    assert purge_expired(db_session) == 1
