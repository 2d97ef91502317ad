"""The worker's LTI housekeeping: spent states, expired tokens, old events, retired keys go;
the rest stays."""

import datetime as dt

from sqlalchemy import func, select

from config.db import utcnow
from lti_tool import keys, maintenance
from lti_tool.models import LtiAccessToken, LtiEvent, LtiEventKind, LtiLoginState, LtiToolKey
from tests.journey_helpers import school
from tests.lti_platform import FakePlatform


def test_purge_forgets_what_is_spent_and_keeps_the_rest(db_session):
    organization, _ = school(db_session)
    platform = FakePlatform().register(db_session, organization)
    now = utcnow()
    day = dt.timedelta(days=1)
    for n, (expires, used) in enumerate(
        [(now + day, None), (now - 2 * day, None), (now, now - 2 * day), (now - day / 2, None)]
    ):
        db_session.add(
            LtiLoginState(
                state_hash=f"{n:064d}",
                nonce="n",
                platform_id=platform.id,
                expires_at=expires,
                used_at=used,
            )
        )
    db_session.add(
        LtiAccessToken(platform_id=platform.id, scopes="a", token="t", expires_at=now - day)
    )
    db_session.add(
        LtiAccessToken(platform_id=platform.id, scopes="b", token="t", expires_at=now + day)
    )
    db_session.add(
        LtiEvent(
            platform_id=platform.id,
            kind=LtiEventKind.LAUNCH,
            summary="old",
            created_at=now - 100 * day,
        )
    )
    db_session.add(
        LtiEvent(platform_id=platform.id, kind=LtiEventKind.LAUNCH, summary="new", created_at=now)
    )
    keys.signing_key(db_session)
    old_key = db_session.scalars(select(LtiToolKey)).one()
    keys.rotate(db_session)
    old_key.superseded_at = now - keys.OVERLAP - day
    db_session.flush()

    assert maintenance.purge(db_session) == 2 + 1 + 1 + 1

    def count(model):
        return db_session.scalar(select(func.count()).select_from(model))

    assert count(LtiLoginState) == 2 and count(LtiAccessToken) == 1 and count(LtiEvent) == 1
    assert [k.kid for k in keys.published(db_session)] == [keys.signing_key(db_session).kid]
