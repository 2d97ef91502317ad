import datetime as dt

from config.ratelimit import Limit, hit, is_blocked, purge_expired

LIMIT = Limit("test", max_hits=3, window=dt.timedelta(minutes=10))
NOON = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


def test_hits_are_counted_per_key_and_window(db_session):
    verdicts = [hit(db_session, LIMIT, "a", now=NOON).allowed for _ in range(4)]
    assert verdicts == [True, True, True, False]
    assert is_blocked(db_session, LIMIT, "a", now=NOON)
    assert not is_blocked(db_session, LIMIT, "b", now=NOON)
    assert hit(db_session, LIMIT, "b", now=NOON).allowed
    later = NOON + dt.timedelta(minutes=10)
    assert not is_blocked(db_session, LIMIT, "a", now=later)
    assert hit(db_session, LIMIT, "a", now=later).hits == 1


def test_retry_after_counts_to_the_end_of_the_window(db_session):
    verdict = hit(db_session, LIMIT, "a", now=NOON + dt.timedelta(minutes=4))
    assert verdict.retry_after_seconds == 6 * 60 + 1


def test_old_windows_are_purged(db_session):
    hit(db_session, LIMIT, "a", now=NOON - dt.timedelta(days=3))
    hit(db_session, LIMIT, "a")
    assert purge_expired(db_session) == 1
