"""Scores: competence pix and levels, mastery rates, certifiability, checkpoints."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.content import ContentPack, Skill
from engine.knowledge import Knowledge, Status

PIX_PER_LEVEL = 8
MAX_REACHABLE_LEVEL = 5
FRAMEWORK_LEVELS = 8
CERTIFIABLE_COMPETENCES = 5
CHECKPOINT_EVERY = 5
COLLECTION_PIX_REFERENCE = 40 * 16


@dataclass(frozen=True)
class CompetenceScore:
    competence_id: str
    pix: int
    level: int


@dataclass(frozen=True)
class Profile:
    competences: tuple[CompetenceScore, ...]

    @property
    def pix(self) -> int:
        return sum(c.pix for c in self.competences)

    @property
    def certifiable_competences(self) -> int:
        return sum(c.level >= 1 for c in self.competences)

    @property
    def is_certifiable(self) -> bool:
        return self.certifiable_competences >= CERTIFIABLE_COMPETENCES

    @property
    def max_pix(self) -> int:
        return len(self.competences) * FRAMEWORK_LEVELS * PIX_PER_LEVEL

    def collection_rate(self) -> float:
        """The profiles-collection "mastery": pix score over 40 × 16."""
        return min(1.0, self.pix / COLLECTION_PIX_REFERENCE)


def profile(
    pack: ContentPack,
    knowledge: Mapping[str, Knowledge],
    *,
    max_reachable_level: int = MAX_REACHABLE_LEVEL,
) -> Profile:
    """Pix and level of every competence from the user's effective knowledge: the pix each
    element earned when it was recorded (a later content version never rescores a user)."""
    earned: dict[str, float] = {c.id: 0.0 for c in pack.competences}
    for skill_id, element in knowledge.items():
        skill = pack.skill_by_id.get(skill_id)
        if skill is not None and element.status is Status.VALIDATED:
            earned[skill.competence_id] += element.earned_pix
    cap = max_reachable_level * PIX_PER_LEVEL
    scores = []
    for competence in pack.competences:
        pix = min(math.floor(earned[competence.id] + 1e-9), cap)
        level = min(pix // PIX_PER_LEVEL, max_reachable_level)
        scores.append(CompetenceScore(competence.id, pix, level))
    return Profile(tuple(scores))


@dataclass(frozen=True)
class MasteryPart:
    """Validated target skills of a group (a competence, an area or the whole profile)."""

    key: str
    targeted: int
    validated: int
    tested: int

    @property
    def rate(self) -> float:
        return self.validated / self.targeted if self.targeted else 0.0


@dataclass(frozen=True)
class CampaignResult:
    overall: MasteryPart
    competences: tuple[MasteryPart, ...]
    areas: tuple[MasteryPart, ...]

    @property
    def mastery_rate(self) -> float:
        return self.overall.rate

    def as_dict(self) -> dict[str, object]:
        """A frozen, JSON-ready snapshot for sharing."""

        def part(p: MasteryPart) -> dict[str, object]:
            return {"targeted": p.targeted, "validated": p.validated, "tested": p.tested}

        return {
            "overall": part(self.overall),
            "competences": {p.key: part(p) for p in self.competences},
            "areas": {p.key: part(p) for p in self.areas},
        }


def campaign_result(
    pack: ContentPack, campaign_skills: Iterable[Skill], knowledge: Mapping[str, Knowledge]
) -> CampaignResult:
    """Mastery of the campaign's skills, overall, per competence and per area."""
    area_of = {c.id: c.area_id for c in pack.competences}
    totals: dict[tuple[str, str], list[int]] = {}

    def count(key: tuple[str, str], skill_id: str) -> None:
        entry = totals.setdefault(key, [0, 0, 0])
        entry[0] += 1
        element = knowledge.get(skill_id)
        if element is not None:
            entry[2] += 1
            if element.status is Status.VALIDATED:
                entry[1] += 1

    for skill in campaign_skills:
        count(("overall", ""), skill.id)
        count(("competence", skill.competence_id), skill.id)
        count(("area", area_of[skill.competence_id]), skill.id)

    def parts(kind: str) -> tuple[MasteryPart, ...]:
        return tuple(
            MasteryPart(key, *totals[(k, key)]) for (k, key) in sorted(totals) if k == kind
        )

    overall = totals.get(("overall", ""), [0, 0, 0])
    return CampaignResult(MasteryPart("overall", *overall), parts("competence"), parts("area"))


def is_checkpoint(answer_count: int) -> bool:
    """A checkpoint follows every fifth answer."""
    return answer_count > 0 and answer_count % CHECKPOINT_EVERY == 0


def rounded_percent(rate: float) -> int:
    """Percentages as shown to people: rounded half up."""
    return math.floor(rate * 100 + 0.5)
