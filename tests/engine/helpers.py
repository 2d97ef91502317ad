"""A small synthetic profile for engine tests (the real pack is tested on its own)."""

from __future__ import annotations

import datetime as dt

from engine.content import Challenge, ChallengeType, Skill
from engine.knowledge import Knowledge, Source, Status
from engine.selection import ProfileIndex

T0 = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.UTC)


def skill(
    tube: str, level: int, *, competence: str = "1.1", timed: bool = False, pix: float = 2.0
) -> Skill:
    skill_id = f"{tube}{level}"
    challenge = Challenge(id=f"ch-{skill_id[1:]}", skill_id=skill_id, type=ChallengeType.QCU,
                          instruction="?", explanation="!", proposals=("oui", "non"),
                          solution_indexes=(1,), timer=30 if timed else None)  # fmt: skip
    return Skill(skill_id, tube, competence, level, "—", "", pix, (challenge,), ())


def profile(
    tubes: dict[str, int],
    *,
    timed: set[str] = frozenset(),
    competences: dict[str, str] | None = None,
) -> ProfileIndex:
    """Tubes up to their top level, all in competence 1.1 unless `competences` (tube -> id)."""
    return ProfileIndex.build(
        skill(
            tube,
            level,
            timed=f"{tube}{level}" in timed,
            competence=(competences or {}).get(tube, "1.1"),
        )
        for tube, top in tubes.items()
        for level in range(1, top + 1)
    )


def known(
    skill_id: str,
    status: Status,
    *,
    source: Source = Source.DIRECT,
    at: dt.datetime = T0,
    pix: float = 0.0,
) -> Knowledge:
    return Knowledge(skill_id, status, source, at, pix)
