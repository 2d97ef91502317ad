"""Matching a student who arrives through a connector with the school's learner list, once: the
student types their birth date, then the learners of the school born that day are compared by
name with the names the connector vouched for (signed by the ENT or the LMS, never typed) —
accents, case and punctuation ignored; exact names first, then close ones (edit distance at most
a quarter of the name's length, first and last names each). A connector links the one candidate
(`attach_learner`), or, when the learner is already someone's, may give that account its
identity too (`accounts.external.join_identity`): the same student from the ENT and from the
school's LMS is then one user.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from campaigns.accounts.external import (
    ExternalIdentity,
    find_external_user,
    join_identity,
    repoint_identity,
    sign_in_external,
)
from campaigns.orga.learners import AlreadyLinked, LearnerTaken, attach_learner
from campaigns.shared.models import Learner, Organization, User
from campaigns.shared.names import normalize_name
from config import ratelimit
from config.ratelimit import Limit

FUZZY_RATIO = 0.25
# Birth-date guesses against one student's names in one school, whichever connector and
# account they come from (each connector also limits its own identity's guesses).
NAME_GUESSES = Limit("birthdate:learner-names", max_hits=10, window=dt.timedelta(minutes=15))
NAME_GUESSES_DAILY = Limit("birthdate-day:learner-names", max_hits=30, window=dt.timedelta(days=1))


@dataclass(frozen=True)
class MatchOutcome:
    user: User | None  # signed in as, when matched
    how: str = ""  # "strict", "fuzzy", "repointed", "joined"
    problem: str | None = None  # "none", "several", "taken" or "already" when not


def count_guess(
    session: Session,
    organization: Organization,
    identity: ExternalIdentity,
    identity_limits: Sequence[Limit],
    identity_key: str,
    *,
    secret: str,
) -> bool:
    """Count one birth-date guess against the connector's own limits of this identity (under
    `identity_key`) and against the student's names in this school, whichever connector and
    account they come from; whether every limit still allows it (`ratelimit.hit` stores keys
    hashed)."""
    names = f"{organization.id}:{normalize_name(identity.first_name)}:"
    names += normalize_name(identity.last_name)
    counted = [(limit, identity_key) for limit in identity_limits]
    counted += [(NAME_GUESSES, names), (NAME_GUESSES_DAILY, names)]
    verdicts = [ratelimit.hit(session, limit, key, secret=secret) for limit, key in counted]
    return all(verdict.allowed for verdict in verdicts)


def parse_birthdate(day: str, month: str, year: str) -> dt.date | None:
    """The date the three fields give, or None (not digits, no such day, before 1900 or in the
    future)."""
    if not (day.isdigit() and month.isdigit() and year.isdigit()) or len(year) != 4:
        return None
    try:
        value = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    today = dt.datetime.now(dt.UTC).date()
    return value if dt.date(1900, 1, 1) <= value <= today else None


def distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, 1):
        current = [i]
        for j, right in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right))
            )
        previous = current
    return previous[-1]


def _close(typed: str, known: str) -> bool:
    if not typed or not known:
        return False
    return distance(typed, known) / max(len(typed), len(known)) <= FUZZY_RATIO


def has_learners(session: Session, organization: Organization) -> bool:
    """Whether the organization has a learner list to match students with."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Learner.organization_id == organization.id, Learner.is_disabled.is_(False)
                )
            )
        )
    )


def match_learners(
    session: Session,
    organization: Organization,
    first_name: str,
    last_name: str,
    birthdate: dt.date,
) -> tuple[list[Learner], str]:
    """The learners of the school born that day whose names match, and how ("strict" or
    "fuzzy"). Close names are tried only when no learner of the school bears exactly these
    names (whatever their birth date): a student on the list is never matched to a namesake's
    close neighbour."""
    learners = list(
        session.scalars(
            select(Learner).where(
                Learner.organization_id == organization.id,
                Learner.is_disabled.is_(False),
            )
        )
    )
    first, last = normalize_name(first_name), normalize_name(last_name)
    strict = [
        learner
        for learner in learners
        if normalize_name(learner.first_name) == first and normalize_name(learner.last_name) == last
    ]
    if strict:
        return [learner for learner in strict if learner.birthdate == birthdate], "strict"
    fuzzy = [
        learner
        for learner in learners
        if learner.birthdate == birthdate
        and _close(first, normalize_name(learner.first_name))
        and _close(last, normalize_name(learner.last_name))
    ]
    return fuzzy, "fuzzy"


def match_student(
    session: Session,
    organization: Organization,
    identity: ExternalIdentity,
    birthdate: dt.date,
    *,
    moved: Callable[[User, str], bool] | None = None,
) -> MatchOutcome:
    """Match a student the connector vouched for with the school's learners born on
    `birthdate`; when exactly one fits, link it (or give its account this identity too, or
    re-point the account's identity when `moved(owner, how)` says it is the same student's new
    id) and return the account to sign in. A learner already someone else's answers "taken";
    the page must then answer as for "none" (it must not confirm a classmate's birth date). A
    failed match keeps nothing (no account, no identity): it runs in a savepoint."""
    attempt = session.begin_nested()
    outcome = _match(session, organization, identity, birthdate, moved)
    if outcome.user is None:
        attempt.rollback()
    else:
        attempt.commit()
    return outcome


def _match(
    session: Session,
    organization: Organization,
    identity: ExternalIdentity,
    birthdate: dt.date,
    moved: Callable[[User, str], bool] | None,
) -> MatchOutcome:
    found, how = match_learners(
        session, organization, identity.first_name, identity.last_name, birthdate
    )
    if not found:
        return MatchOutcome(user=None, problem="none")
    if len(found) > 1:
        return MatchOutcome(user=None, problem="several")
    learner = found[0]
    if learner.user_id is None:
        user = sign_in_external(session, identity)
        try:
            attach_learner(session, organization, learner.id, user)
        except LearnerTaken:
            return MatchOutcome(user=None, problem="taken")
        except AlreadyLinked:
            return MatchOutcome(user=None, problem="already")
        return MatchOutcome(user=user, how=how)
    owner = session.get(User, learner.user_id)
    known = find_external_user(session, identity)
    if owner is not None and known is not None and known.id == owner.id:
        return MatchOutcome(user=sign_in_external(session, identity), how=how)
    if owner is not None and known is None:
        if moved is not None and moved(owner, how):
            return MatchOutcome(user=repoint_identity(session, owner, identity), how="repointed")
        if how == "strict":  # the same student, known from the other connector: one account
            joined = join_identity(session, owner, identity, learner)
            if joined is not None:
                return MatchOutcome(user=joined, how="joined")
    return MatchOutcome(user=None, problem="taken")
