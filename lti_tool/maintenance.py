"""What the worker forgets now and then (`parcours worker` runs `purge`): spent login states,
expired access tokens, retired tool keys, launches that never finished matching their learner
and old activity lines."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from config.db import execute_dml, utcnow
from lti_tool import keys, matching
from lti_tool.models import LtiAccessToken, LtiEvent, LtiLoginState

STATES_KEPT = dt.timedelta(days=1)  # after expiry: a replay within a day is still recognised
EVENTS_KEPT = dt.timedelta(days=90)


def purge(session: Session) -> int:
    now = utcnow()
    removed = execute_dml(
        session,
        delete(LtiLoginState).where(
            or_(
                LtiLoginState.expires_at < now - STATES_KEPT,
                LtiLoginState.used_at < now - STATES_KEPT,
            )
        ),
    ).rowcount
    removed += execute_dml(
        session, delete(LtiAccessToken).where(LtiAccessToken.expires_at < now)
    ).rowcount
    removed += execute_dml(
        session, delete(LtiEvent).where(LtiEvent.created_at < now - EVENTS_KEPT)
    ).rowcount
    removed += matching.purge_expired(session, now)
    return removed + keys.purge_retired(session)
