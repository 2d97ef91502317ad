"""Simulated learners and a complete assessment loop, for benchmarks and property tests."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.answers import Result
from engine.knowledge import Knowledge, NewKnowledge, Source, Status
from engine.selection import ProfileIndex, Selector, Situation, Step

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Learner:
    """True level per tube (skills up to it are mastered) and a noisy way of answering.

    With a `noise_seed`, the luck of each answer is drawn once per skill: every algorithm
    meets the same slips and guesses on the same skills (paired comparison)."""

    levels: Mapping[str, int]
    slip: float = 0.1
    guess: float = 0.15
    noise_seed: str | None = None

    def masters(self, tube_id: str, level: int) -> bool:
        return level <= self.levels.get(tube_id, 0)

    def answers(self, tube_id: str, level: int, rng: random.Random) -> Result:
        luck = (
            random.Random(f"{self.noise_seed}:{tube_id}:{level}").random()
            if self.noise_seed is not None
            else rng.random()
        )
        if self.masters(tube_id, level):
            return Result.KO if luck < self.slip else Result.OK
        return Result.OK if luck < self.guess else Result.KO


def random_learner(
    profile: ProfileIndex,
    rng: random.Random,
    *,
    slip: float = 0.1,
    guess: float = 0.15,
    tube_spread: float = 1.0,
    independent: bool = False,
) -> Learner:
    """An overall ability, and per tube a level scattered around it (or, `independent`, each
    tube's level drawn on its own); the luck of the answers is fixed per skill."""
    ability = rng.uniform(-0.5, 7.0)
    levels = {}
    for tube in profile.tubes:
        top = tube.skills[-1].level
        drawn = rng.uniform(-0.5, top + 0.5) if independent else ability + rng.gauss(0, tube_spread)
        levels[tube.id] = max(0, min(top, round(drawn)))
    return Learner(levels, slip, guess, noise_seed=f"{rng.random():.17f}")


@dataclass
class Outcome:
    questions: int
    knowledge: dict[str, Knowledge]
    steps: list[Step] = field(default_factory=list)


def run(
    selector: Selector,
    profile: ProfileIndex,
    learner: Learner,
    rng: random.Random,
    *,
    assessment_id: str = "sim",
    known: Mapping[str, Knowledge] | None = None,
    max_questions: int = 10_000,
) -> Outcome:
    """Take a whole test: ask, answer, record, until the selector has nothing left to ask."""
    knowledge: dict[str, Knowledge] = dict(known or {})
    recorded: set[str] = set()
    steps: list[Step] = []
    clock = EPOCH

    def record(new: list[NewKnowledge]) -> None:
        nonlocal clock
        for element in new:
            clock += dt.timedelta(seconds=1)
            knowledge[element.skill.id] = Knowledge(
                element.skill.id, element.status, element.source, clock, element.earned_pix
            )
            recorded.add(element.skill.id)

    def situation() -> Situation:
        return Situation(profile, assessment_id, knowledge, tuple(steps), frozenset(recorded))

    while len(steps) < max_questions:
        challenge = selector.next_challenge(situation())
        if challenge is None:
            break
        skill = profile.skills[challenge.skill_id]
        steps.append(Step(challenge, learner.answers(skill.tube_id, skill.level, rng)))
        record(selector.record_answer(situation()))
    record(selector.record_end(situation()))
    return Outcome(len(steps), knowledge, steps)


def agreement(profile: ProfileIndex, learner: Learner, knowledge: Mapping[str, Knowledge]) -> float:
    """Share of the profile's skills whose final status (validated or not) is the truth."""
    right = 0
    for skill in profile.skills.values():
        element = knowledge.get(skill.id)
        validated = element is not None and element.status is Status.VALIDATED
        right += validated == learner.masters(skill.tube_id, skill.level)
    return right / len(profile.skills)


def true_mastery(profile: ProfileIndex, learner: Learner) -> float:
    return sum(learner.masters(s.tube_id, s.level) for s in profile.skills.values()) / len(
        profile.skills
    )


def measured_mastery(profile: ProfileIndex, knowledge: Mapping[str, Knowledge]) -> float:
    validated = sum(
        1
        for s in profile.skills.values()
        if (k := knowledge.get(s.id)) is not None and k.status is Status.VALIDATED
    )
    return validated / len(profile.skills)


__all__ = [
    "Learner",
    "Outcome",
    "Source",
    "agreement",
    "measured_mastery",
    "random_learner",
    "run",
    "true_mastery",
]
