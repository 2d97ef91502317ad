"""Knowledge elements: what we know of one user and one skill, and how answers create them.

Knowledge is per user, not per campaign: a skill validated anywhere is never asked again and
counts everywhere. A failure is forgotten after a while (the skill may be asked again); a
success is kept for good.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from engine.answers import Result
from engine.content import Skill

FORGET_FAILURES_AFTER = dt.timedelta(days=4)


class Status(StrEnum):
    VALIDATED = "validated"
    INVALIDATED = "invalidated"
    RESET = "reset"


class Source(StrEnum):
    DIRECT = "direct"
    INFERRED = "inferred"


@dataclass(frozen=True)
class Knowledge:
    """One knowledge element, as stored."""

    skill_id: str
    status: Status
    source: Source
    created_at: dt.datetime
    earned_pix: float = 0.0


@dataclass(frozen=True)
class NewKnowledge:
    """A knowledge element to record after an answer."""

    skill: Skill
    status: Status
    source: Source

    @property
    def earned_pix(self) -> float:
        return self.skill.pix_value if self.status is Status.VALIDATED else 0.0


def effective(
    elements: Iterable[Knowledge], *, at: dt.datetime | None = None
) -> dict[str, Knowledge]:
    """The knowledge that counts, per skill: the latest element, minus resets and minus failures
    older than FORGET_FAILURES_AFTER before `at` (the assessment's start)."""
    latest: dict[str, Knowledge] = {}
    for element in elements:
        current = latest.get(element.skill_id)
        if current is None or element.created_at >= current.created_at:
            latest[element.skill_id] = element
    kept: dict[str, Knowledge] = {}
    for skill_id, element in latest.items():
        if element.status is Status.RESET:
            continue
        if (
            element.status is Status.INVALIDATED
            and at is not None
            and element.created_at <= at - FORGET_FAILURES_AFTER
        ):
            continue
        kept[skill_id] = element
    return kept


def infer(
    answered: Skill,
    result: Result,
    *,
    target: Mapping[str, Skill],
    known: Mapping[str, object],
) -> list[NewKnowledge]:
    """The reference rule: a direct element for the answered skill; if validated, every easier
    target skill of its tube is validated too; if not, every harder one is invalidated. Skills
    already known are left alone."""
    validated = result.validated
    new: list[NewKnowledge] = []
    if answered.id in target and answered.id not in known:
        status = Status.VALIDATED if validated else Status.INVALIDATED
        new.append(NewKnowledge(answered, status, Source.DIRECT))
    for skill in target.values():
        if skill.tube_id != answered.tube_id or skill.id == answered.id or skill.id in known:
            continue
        if validated and skill.level < answered.level:
            new.append(NewKnowledge(skill, Status.VALIDATED, Source.INFERRED))
        elif not validated and skill.level > answered.level:
            new.append(NewKnowledge(skill, Status.INVALIDATED, Source.INFERRED))
    return new
