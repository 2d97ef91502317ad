"""The one-time match of a student arriving from an ENT with the school's learner list: the
student types their birth date, then the learners of the school born that day are compared by
name — accents, case and punctuation ignored; exact names first, then close ones (edit distance
at most a quarter of the name's length, first and last names each) — and exactly one candidate
is linked for good through the connector seam. No candidate or several: nothing is linked and
the student is told whom to ask.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import connectors
from campaigns.connectors import Learner, Organization, User

FUZZY_RATIO = 0.25


@dataclass(frozen=True)
class Outcome:
    linked: bool
    how: str = ""  # "strict" or "fuzzy" when linked
    problem: str | None = None  # "none", "several", "taken" or "already" when not


def learner_of(session: Session, organization: Organization, user: User) -> Learner | None:
    return session.scalar(
        select(Learner).where(
            Learner.organization_id == organization.id,
            Learner.user_id == user.id,
            Learner.is_disabled.is_(False),
        )
    )


def parse_birthdate(day: str, month: str, year: str) -> dt.date | None:
    if not (day.isdigit() and month.isdigit() and year.isdigit()) or len(year) != 4:
        return None
    try:
        value = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    today = dt.datetime.now(dt.UTC).date()
    return value if dt.date(1900, 1, 1) <= value <= today else None


def normalize(name: str) -> str:
    """Lowercase ASCII letters and single spaces: "Lé-a  O'Neil" → "le a o neil"."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", folded).split())


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


def candidates(
    session: Session, organization: Organization, user: User, birthdate: dt.date
) -> tuple[list[Learner], str]:
    """The learners of the school born that day whose names match the user's, and how."""
    born = list(
        session.scalars(
            select(Learner).where(
                Learner.organization_id == organization.id,
                Learner.birthdate == birthdate,
                Learner.is_disabled.is_(False),
            )
        )
    )
    first, last = normalize(user.first_name or ""), normalize(user.last_name or "")
    strict = [
        learner
        for learner in born
        if normalize(learner.first_name) == first and normalize(learner.last_name) == last
    ]
    if strict:
        return strict, "strict"
    fuzzy = [
        learner
        for learner in born
        if _close(first, normalize(learner.first_name))
        and _close(last, normalize(learner.last_name))
    ]
    return fuzzy, "fuzzy"


def match_and_link(
    session: Session, organization: Organization, user: User, birthdate: dt.date
) -> Outcome:
    found, how = candidates(session, organization, user, birthdate)
    if not found:
        return Outcome(linked=False, problem="none")
    if len(found) > 1:
        return Outcome(linked=False, problem="several")
    try:
        connectors.attach_learner(session, organization, found[0].id, user)
    except connectors.LearnerTaken:
        return Outcome(linked=False, problem="taken")
    except connectors.AlreadyLinked:
        return Outcome(linked=False, problem="already")
    return Outcome(linked=True, how=how)
