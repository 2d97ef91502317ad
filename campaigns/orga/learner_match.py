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

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from campaigns.shared.models import Learner, Organization
from campaigns.shared.names import normalize_name
from config.ratelimit import Limit

FUZZY_RATIO = 0.25
# Birth-date guesses against one student's names in one school, whichever connector and
# account they come from (each connector also limits its own identity's guesses).
NAME_GUESSES = Limit("birthdate:learner-names", max_hits=10, window=dt.timedelta(minutes=15))
NAME_GUESSES_DAILY = Limit("birthdate-day:learner-names", max_hits=30, window=dt.timedelta(days=1))


def name_guess_limits(
    organization: Organization, first_name: str, last_name: str
) -> list[tuple[Limit, str]]:
    """The limits a birth-date guess for these names in this school counts against, with the
    key to count it under (`ratelimit.hit` stores keys hashed)."""
    key = f"{organization.id}:{normalize_name(first_name)}:{normalize_name(last_name)}"
    return [(NAME_GUESSES, key), (NAME_GUESSES_DAILY, key)]


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
