"""Simulated learners and a complete assessment loop, for benchmarks and property tests."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.answers import Result
from engine.knowledge import Knowledge, NewKnowledge, Source, Status
from engine.selection import ProfileIndex, Selector, Situation, Step

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Learner:
    """What a simulated student masters and how they answer.

    By default the student masters each tube up to a level (`levels`: a perfect ladder); with
    `mastered`, exactly the (tube, level) pairs listed. A mastered skill's question is failed
    with probability `slip`, another one succeeded with probability `guess`, unless
    `challenge_noise` gives a challenge its own (slip, guess). With a `noise_seed`, the luck of
    each answer is drawn once per skill: every algorithm meets the same slips and guesses on the
    same skills (paired comparison)."""

    levels: Mapping[str, int]
    slip: float = 0.1
    guess: float = 0.15
    noise_seed: str | None = None
    mastered: frozenset[tuple[str, int]] | None = None
    challenge_noise: Mapping[str, tuple[float, float]] | None = None

    def masters(self, tube_id: str, level: int) -> bool:
        if self.mastered is not None:
            return (tube_id, level) in self.mastered
        return level <= self.levels.get(tube_id, 0)

    def answers(
        self, tube_id: str, level: int, rng: random.Random, challenge_id: str | None = None
    ) -> Result:
        luck = (
            random.Random(f"{self.noise_seed}:{tube_id}:{level}").random()
            if self.noise_seed is not None
            else rng.random()
        )
        slip, guess = self.slip, self.guess
        if self.challenge_noise is not None and challenge_id is not None:
            slip, guess = self.challenge_noise.get(challenge_id, (slip, guess))
        if self.masters(tube_id, level):
            return Result.KO if luck < slip else Result.OK
        return Result.OK if luck < guess else Result.KO


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


# -- a family of populations ----------------------------------------------------------------------
#
# Each builds learners differently, so that a selector is judged on learners unlike its own
# model (docs/engine.md describes each one).

SLIP_RANGE = (0.02, 0.25)  # "per-challenge": each challenge's slip and guess drawn in these
GUESS_RANGE = (0.05, 0.40)
LADDER_SOFTNESS = 1.5  # "soft-ladders": how gently P(known) falls with the level
ABILITY_RANGE = (-0.5, 7.0)  # an overall (or, "independent-areas", an area's) ability
TUBE_SPREAD = 1.0  # σ of a tube's level around that ability


def area_of(competence_id: str) -> str:
    """The area of a competence ("3.2" is in area "3")."""
    return competence_id.split(".", 1)[0]


def challenge_noise(profile: ProfileIndex, seed: int) -> dict[str, tuple[float, float]]:
    """A slip and a guess rate for every challenge of the profile, drawn once (a property of the
    question, the same for every learner)."""
    rng = random.Random(f"challenge-noise:{seed}")
    return {
        challenge.id: (rng.uniform(*SLIP_RANGE), rng.uniform(*GUESS_RANGE))
        for skill_id in sorted(profile.playable)
        for challenge in profile.playable[skill_id]
    }


def _tube_levels(profile: ProfileIndex, rng: random.Random, *, by_area: bool) -> dict[str, float]:
    """Each tube's true level, unrounded: an overall ability plus a normal deviation (σ = 1) per
    tube; `by_area`: an ability drawn on its own for every area instead of one overall."""
    overall = rng.uniform(*ABILITY_RANGE)
    areas: dict[str, float] = {}
    levels = {}
    for tube in profile.tubes:
        area = area_of(tube.skills[0].competence_id)
        if by_area and area not in areas:
            areas[area] = rng.uniform(*ABILITY_RANGE)
        ability = areas[area] if by_area else overall
        levels[tube.id] = ability + rng.gauss(0, TUBE_SPREAD)
    return levels


def population_learner(
    name: str,
    profile: ProfileIndex,
    rng: random.Random,
    noise: Mapping[str, tuple[float, float]] | None = None,
) -> Learner:
    """One learner of population `name` (see POPULATIONS); `noise`: the per-challenge rates of
    the populations that use them (`challenge_noise`)."""
    by_area = name == "independent-areas"
    drawn = _tube_levels(profile, rng, by_area=by_area)
    levels = {
        tube.id: max(0, min(tube.skills[-1].level, round(drawn[tube.id]))) for tube in profile.tubes
    }
    noise_seed = f"{rng.random():.17f}"
    if name in ("default", "independent-areas"):
        return Learner(levels, 0.10, 0.15, noise_seed)
    if name == "noiseless":
        return Learner(levels, 0.0, 0.0, noise_seed)
    if name == "random":
        # Clicks without reading: masters nothing it shows, right one time in four.
        return Learner(dict.fromkeys(levels, 0), 0.0, 0.25, noise_seed)
    mastered = None
    if name in ("soft-ladders", "realistic"):
        mastered = frozenset(
            (tube.id, level)
            for tube in profile.tubes
            for level in tube.levels
            if rng.random() < _sigmoid(LADDER_SOFTNESS * (drawn[tube.id] + 0.5 - level))
        )
    per_challenge = noise if name in ("per-challenge", "realistic") else None
    if name not in ("per-challenge", "soft-ladders", "realistic"):
        raise ValueError(f"unknown population: {name}")
    return Learner(levels, 0.10, 0.15, noise_seed, mastered, per_challenge)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


POPULATIONS = (
    "default",
    "per-challenge",
    "soft-ladders",
    "independent-areas",
    "noiseless",
    "random",
    "realistic",
)


@dataclass
class Outcome:
    questions: int
    knowledge: dict[str, Knowledge]
    steps: list[Step] = field(default_factory=list)
    # The selector's progress estimate after each answer but the last (`progress=True`).
    progress: list[float] = field(default_factory=list)


def run(
    selector: Selector,
    profile: ProfileIndex,
    learner: Learner,
    rng: random.Random,
    *,
    assessment_id: str = "sim",
    known: Mapping[str, Knowledge] | None = None,
    max_questions: int = 10_000,
    progress: bool = False,
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

    estimates: list[float] = []
    while len(steps) < max_questions:
        now = situation()
        challenge = selector.next_challenge(now)
        if challenge is None:
            break
        if progress and steps:
            estimates.append(selector.progress(now))  # as the journey does, after the choice
        skill = profile.skills[challenge.skill_id]
        steps.append(
            Step(challenge, learner.answers(skill.tube_id, skill.level, rng, challenge.id))
        )
        record(selector.record_answer(situation()))
    record(selector.record_end(situation()))
    return Outcome(len(steps), knowledge, steps, estimates)


def agreement(profile: ProfileIndex, learner: Learner, knowledge: Mapping[str, Knowledge]) -> float:
    """Share of the profile's skills whose final status (validated or not) is the truth."""
    right = 0
    for skill in profile.skills.values():
        element = knowledge.get(skill.id)
        validated = element is not None and element.status is Status.VALIDATED
        right += validated == learner.masters(skill.tube_id, skill.level)
    return right / len(profile.skills)


def coverage(profile: ProfileIndex, steps: list[Step]) -> float:
    """Share of the profile's competences with at least one question answered in the test."""
    competences = {s.competence_id for s in profile.skills.values()}
    asked = {profile.skills[step.challenge.skill_id].competence_id for step in steps}
    return len(asked & competences) / len(competences)


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
    "ABILITY_RANGE",
    "POPULATIONS",
    "TUBE_SPREAD",
    "Learner",
    "Outcome",
    "Source",
    "agreement",
    "challenge_noise",
    "coverage",
    "measured_mastery",
    "population_learner",
    "random_learner",
    "run",
    "true_mastery",
]
