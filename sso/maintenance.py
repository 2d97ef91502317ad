"""What the worker does for the SAML connector now and then (`parcours worker` runs
`purge_and_refresh`): forget spent requests, expired assertion ids, abandoned matches and old events, delete keys
rotated out long ago, and fetch again the metadata of IdPs registered from a URL when it is due
(a bad document is refused and the last good copy kept)."""

from __future__ import annotations

import datetime as dt

import requests
from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from config.db import execute_dml, utcnow
from sso import keys, registry
from sso.models import SamlEvent, SamlPendingMatch, SamlRequest, SamlSeenAssertion

REQUESTS_KEPT = dt.timedelta(days=1)
EVENTS_KEPT = dt.timedelta(days=90)


def purge(session: Session) -> int:
    now = utcnow()
    removed = execute_dml(
        session,
        delete(SamlRequest).where(
            or_(
                SamlRequest.expires_at < now - REQUESTS_KEPT,
                SamlRequest.used_at < now - REQUESTS_KEPT,
            )
        ),
    ).rowcount
    removed += execute_dml(
        session, delete(SamlSeenAssertion).where(SamlSeenAssertion.expires_at < now)
    ).rowcount
    removed += execute_dml(
        session, delete(SamlPendingMatch).where(SamlPendingMatch.expires_at < now)
    ).rowcount
    removed += execute_dml(
        session, delete(SamlEvent).where(SamlEvent.created_at < now - EVENTS_KEPT)
    ).rowcount
    return removed + keys.purge_retired(session)


def purge_and_refresh(session: Session) -> int:
    done = purge(session)
    due = registry.due_for_refresh(session)
    if due:
        http = requests.Session()
        for idp in due:
            done += int(registry.refresh_metadata(session, idp, http))
    return done
