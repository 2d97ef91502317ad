"""Choosing the next challenge, and the knowledge an assessment records.

Two selectors share one interface:

- `Baseline` reproduces the reference "smart random" algorithm: easy tubes first, level 2 first,
  a level estimate θ, the too-difficult filter, the reward, never two timed challenges in a row,
  a deterministic pick; knowledge is recorded after every answer by the reference inference
  (a success validates the easier skills of the tube, a failure invalidates the harder ones).

- `Adaptive` (the improved selector) keeps, for every tube, a probability distribution over how
  far up the tube the student masters, updated by every answer with a noise model (slips and
  guesses) and a prior tied to the student's overall level. It asks the question that most
  reduces the expected number of wrongly classified skills, closes a tube once that expectation
  is small, and then records the whole tube at once from the posterior: noisy answers no longer
  cascade into wrong inferences, and confident tubes stop early.

Both are pure functions of the profile, the knowledge the user had before the assessment and
the answers of this assessment, so any process can resume any assessment.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from engine.answers import Result
from engine.content import Challenge, Skill
from engine.knowledge import Knowledge, NewKnowledge, Source, Status, infer

EASY_TUBE_MAX_LEVEL = 3
FIRST_LEVEL = 2
TOO_DIFFICULT = 2.0
THETA_GRID = tuple(x / 2 for x in range(1, 16))  # 0.5 … 7.5


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def stable_hash(*parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# -- the profile, indexed once per campaign -------------------------------------------------------


@dataclass(frozen=True)
class TubeIndex:
    id: str
    skills: tuple[Skill, ...]  # target skills of the tube, by level
    levels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(s.level for s in self.skills))

    @property
    def is_easy(self) -> bool:
        return self.skills[-1].level <= EASY_TUBE_MAX_LEVEL


@dataclass(frozen=True)
class ProfileIndex:
    """A campaign's frozen skills, arranged for fast selection."""

    skills: Mapping[str, Skill]
    tubes: tuple[TubeIndex, ...]
    tube_of: Mapping[str, TubeIndex]
    position: Mapping[str, int]  # skill id -> index in its tube
    playable: Mapping[str, tuple[Challenge, ...]]  # skill id -> challenges that may be asked
    untimed: frozenset[str]  # skills with a playable challenge that has no timer

    @classmethod
    def build(cls, skills: Iterable[Skill], *, locale: str = "fr") -> ProfileIndex:
        by_tube: dict[str, list[Skill]] = {}
        unique = {s.id: s for s in skills}
        for skill in unique.values():
            by_tube.setdefault(skill.tube_id, []).append(skill)
        tubes = tuple(
            TubeIndex(tube_id, tuple(sorted(group, key=lambda s: s.level)))
            for tube_id, group in sorted(by_tube.items())
        )
        tube_of = {s.id: t for t in tubes for s in t.skills}
        position = {s.id: i for t in tubes for i, s in enumerate(t.skills)}
        playable = {s.id: s.playable_challenges for s in unique.values()}
        untimed = frozenset(
            skill_id for skill_id, pool in playable.items() if any(not c.is_timed for c in pool)
        )
        return cls(unique, tubes, tube_of, position, playable, untimed)


@dataclass(frozen=True)
class Step:
    """One answered challenge of this assessment."""

    challenge: Challenge
    result: Result


@dataclass(frozen=True)
class Situation:
    """Everything a selector may look at."""

    profile: ProfileIndex
    assessment_id: str
    # Effective knowledge the user has now (before this assessment and recorded during it).
    known: Mapping[str, Knowledge]
    steps: tuple[Step, ...] = ()
    # Skills whose knowledge was recorded during this assessment.
    recorded_here: frozenset[str] = field(default_factory=frozenset)

    @property
    def last_was_timed(self) -> bool:
        return bool(self.steps) and self.steps[-1].challenge.is_timed


class Selector(Protocol):
    name: str

    def next_challenge(self, situation: Situation) -> Challenge | None: ...

    def record_answer(self, situation: Situation) -> list[NewKnowledge]:
        """Knowledge to record after the last step of `situation`."""
        ...

    def record_end(self, situation: Situation) -> list[NewKnowledge]:
        """Knowledge to record when the test ends (nothing left to ask)."""
        ...


def _choose_challenge(
    skill: Skill, challenges: Sequence[Challenge], situation: Situation, *, avoid_timed: bool
) -> Challenge:
    pool = [c for c in challenges if not (avoid_timed and c.is_timed)] or list(challenges)
    return pool[stable_hash(situation.assessment_id, skill.id) % len(pool)]


def _timing_filter(candidates: list[Skill], situation: Situation) -> tuple[list[Skill], bool]:
    """Avoid a timed challenge first and after a timed one, unless only timed ones remain."""
    avoid = not situation.steps or situation.last_was_timed
    if not avoid:
        return candidates, False
    untimed = [s for s in candidates if s.id in situation.profile.untimed]
    return (untimed, True) if untimed else (candidates, False)


# -- the baseline ("smart random") ---------------------------------------------------------------


def estimate_level(observations: Iterable[tuple[int, bool]]) -> float:
    """θ on the grid 0.5 … 7.5 minimising |Σ (y − σ(θ − d))|, with a virtual success at d = 0
    and a virtual failure at d = 7; the first minimum wins."""
    data = [(0, True), (7, False), *observations]
    best, best_gap = THETA_GRID[0], math.inf
    for theta in THETA_GRID:
        gap = abs(sum((1.0 if y else 0.0) - sigmoid(theta - d) for d, y in data))
        if gap < best_gap - 1e-12:
            best, best_gap = theta, gap
    return best


class Baseline:
    name = "baseline"

    def next_challenge(self, situation: Situation) -> Challenge | None:
        profile = situation.profile
        candidates = [
            s
            for s in profile.skills.values()
            if profile.playable[s.id] and s.id not in situation.known
        ]
        if not candidates:
            return None
        easy = [s for s in candidates if profile.tube_of[s.id].is_easy]
        if easy:
            candidates = easy
        candidates, avoid_timed = _timing_filter(candidates, situation)

        if not situation.steps:
            level_two = [s for s in candidates if s.level == FIRST_LEVEL]
            lowest = min(s.level for s in candidates)
            best = level_two or [s for s in candidates if s.level == lowest]
        else:
            theta = estimate_level(
                (profile.skills[skill_id].level, k.status is Status.VALIDATED)
                for skill_id, k in situation.known.items()
                if k.source is Source.DIRECT and skill_id in profile.skills
            )
            candidates = [s for s in candidates if s.level - theta <= TOO_DIFFICULT]
            if not candidates:
                return None
            best = self._most_rewarding(candidates, theta, situation)
        best.sort(key=lambda s: s.id)
        skill = best[stable_hash(situation.assessment_id) % len(best)]
        return _choose_challenge(
            skill, profile.playable[skill.id], situation, avoid_timed=avoid_timed
        )

    @staticmethod
    def _most_rewarding(candidates: list[Skill], theta: float, situation: Situation) -> list[Skill]:
        profile = situation.profile
        untested: dict[str, list[int]] = {}
        for tube in {profile.tube_of[s.id].id: profile.tube_of[s.id] for s in candidates}.values():
            untested[tube.id] = [s.level for s in tube.skills if s.id not in situation.known]
        best: list[Skill] = []
        best_reward = -math.inf
        for skill in candidates:
            levels = untested[skill.tube_id]
            p = sigmoid(theta - skill.level)
            easier = sum(1 for level in levels if level <= skill.level)
            harder = sum(1 for level in levels if level >= skill.level)
            reward = p * easier + (1 - p) * harder
            if reward > best_reward + 1e-12:
                best, best_reward = [skill], reward
            elif abs(reward - best_reward) <= 1e-12:
                best.append(skill)
        return best

    def record_answer(self, situation: Situation) -> list[NewKnowledge]:
        step = situation.steps[-1]
        skill = situation.profile.skills.get(step.challenge.skill_id)
        if skill is None:
            return []
        # Only skills assessed in this very test are left alone (the reference's rule): a
        # recent failure from another campaign may still be validated by inference here.
        assessed_here = {k: v for k, v in situation.known.items() if k in situation.recorded_here}
        return infer(skill, step.result, target=situation.profile.skills, known=assessed_here)

    def record_end(self, situation: Situation) -> list[NewKnowledge]:
        return []


# -- the improved selector -----------------------------------------------------------------------

SLIP = 0.10  # a student who masters a skill still fails its question
GUESS = 0.20  # a student who does not master it still succeeds
CLOSE_TUBE_BELOW = 0.05  # a tube this sure of (expected wrong skills) is recorded at once
MIN_GAIN = 0.32  # a question must be worth this much (expected errors and uncertainty removed)
TUBE_SPREAD = 0.8  # how far a tube’s level strays from the student’s overall level
UNCERTAINTY_WEIGHT = 1.0
OUTLIER_SHARE = 0.10
ABILITY_GRID = tuple(x / 4 for x in range(-4, 37))  # overall level −1 … 9
ABILITY_PRIOR_MEAN, ABILITY_PRIOR_SPREAD = 3.0, 2.5


def _gauss(x: float, mean: float, spread: float) -> float:
    return math.exp(-((x - mean) ** 2) / (2 * spread * spread))


def _threshold(levels: Sequence[int], k: int) -> float:
    """The level reached when the first k skills are mastered (half-way to the next one)."""
    if k == 0:
        return levels[0] - 1.0 if levels else 0.0
    return float(levels[k - 1])


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@lru_cache(maxsize=65536)
def _prior(levels: tuple[int, ...], mean: float, spread: float) -> tuple[float, ...]:
    """P(k) when the student's level in the tube is normal(mean, spread): k skills are mastered
    when that level lies between the k-th and the next skill's level (the ends take the tails)."""
    cuts = [_normal_cdf((level - 0.5 - mean) / spread) for level in levels]
    normal = [cuts[0], *(b - a for a, b in itertools.pairwise(cuts)), 1.0 - cuts[-1]]
    # A share of the mass is spread evenly: a tube far from the student's usual level stays
    # possible, so their own answers in that tube always outweigh the other tubes.
    even = OUTLIER_SHARE / len(normal)
    return tuple((1 - OUTLIER_SHARE) * w + even for w in normal)


def _likelihoods(
    levels: tuple[int, ...], observations: tuple[tuple[int, bool], ...]
) -> tuple[float, ...]:
    """P(observations | the student masters exactly the first k skills), k = 0 … K."""
    out = []
    for k in range(len(levels) + 1):
        value = 1.0
        for index, correct in observations:
            p = (1 - SLIP) if index < k else GUESS
            value *= p if correct else 1 - p
        out.append(value)
    return tuple(out)


@lru_cache(maxsize=65536)
def _posterior(
    levels: tuple[int, ...], observations: tuple[tuple[int, bool], ...], mean: float, spread: float
) -> tuple[float, ...]:
    """P(the student masters exactly the first k skills of the tube | evidence), k = 0 … K."""
    weights = [
        p * q
        for p, q in zip(
            _prior(levels, mean, spread), _likelihoods(levels, observations), strict=True
        )
    ]
    total = sum(weights) or 1.0
    return tuple(w / total for w in weights)


@lru_cache(maxsize=65536)
def _ability_evidence(
    levels: tuple[int, ...], observations: tuple[tuple[int, bool], ...]
) -> tuple[float, ...]:
    """log P(this tube's observations | overall level a), for every a of the ability grid."""
    likelihoods = _likelihoods(levels, observations)
    return tuple(
        math.log(
            max(
                sum(
                    p * q for p, q in zip(_prior(levels, a, TUBE_SPREAD), likelihoods, strict=True)
                ),
                1e-300,
            )
        )
        for a in ABILITY_GRID
    )


_ABILITY_LOG_PRIOR = tuple(
    -((a - ABILITY_PRIOR_MEAN) ** 2) / (2 * ABILITY_PRIOR_SPREAD**2) for a in ABILITY_GRID
)


def _ability(
    tubes: Iterable[tuple[tuple[int, ...], tuple[tuple[int, bool], ...]]],
) -> tuple[float, float]:
    """Mean and spread of the overall level given every observed tube."""
    total = list(_ABILITY_LOG_PRIOR)
    for levels, observations in tubes:
        total = list(map(operator.add, total, _ability_evidence(levels, observations)))
    top = max(total)
    weights = [math.exp(x - top) for x in total]
    norm = sum(weights)
    mean = sum(map(operator.mul, weights, ABILITY_GRID)) / norm
    variance = sum(w * (a - mean) ** 2 for w, a in zip(weights, ABILITY_GRID, strict=True)) / norm
    return mean, math.sqrt(variance)


def _mastery(posterior: Sequence[float]) -> list[float]:
    """P(skill j is mastered) = P(k > j) for each skill index j."""
    tail, out = 0.0, [0.0] * (len(posterior) - 1)
    for j in range(len(posterior) - 1, 0, -1):
        tail += posterior[j]
        out[j - 1] = tail
    return out


def _loss(posterior: Sequence[float], observations: Sequence[tuple[int, bool]]) -> float:
    """Expected number of skills the verdicts we would record now get wrong."""
    mastery = _mastery(posterior)
    verdicts = _verdicts(mastery, observations)
    return sum((1 - p) if v else p for p, v in zip(mastery, verdicts, strict=True))


def _uncertainty(posterior: Sequence[float]) -> float:
    """Σ p(1 − p) over the skills: unlike the loss, every informative answer lowers it, even one
    that flips no decision (so confident-but-unchecked tubes still get their question)."""
    return sum(p * (1 - p) for p in _mastery(posterior))


def _update(posterior: Sequence[float], index: int, correct: bool) -> tuple[float, list[float]]:
    """P(answer) and the posterior after it."""
    weighted = [
        w * ((1 - SLIP) if index < k else GUESS)
        if correct
        else w * (SLIP if index < k else 1 - GUESS)
        for k, w in enumerate(posterior)
    ]
    total = sum(weighted)
    return total, [w / total for w in weighted] if total else list(posterior)


@dataclass(frozen=True)
class _Plan:
    loss: float  # expected wrongly classified skills now
    gains: tuple[tuple[float, int], ...]  # (value of asking, skill index) for unasked skills
    mastery: tuple[float, ...]  # P(mastered) per skill
    verdicts: tuple[bool, ...]  # validated or not, if the tube were recorded now

    @property
    def observed(self) -> bool:
        return len(self.gains) < len(self.mastery)


@lru_cache(maxsize=65536)
def _tube_plan(
    levels: tuple[int, ...],
    observations: tuple[tuple[int, bool], ...],
    asked: frozenset[int],
    mean: float,
    spread: float,
) -> _Plan:
    """The tube's current loss and, for each skill index not yet asked, the expected reduction
    of uncertainty from asking it."""
    posterior = _posterior(levels, observations, mean, spread)
    loss, uncertainty = _loss(posterior, observations), _uncertainty(posterior)
    gains = []
    for index in range(len(levels)):
        if index in asked:
            continue
        p_right, after_right = _update(posterior, index, True)
        p_wrong, after_wrong = _update(posterior, index, False)
        loss_gain = (
            loss
            - p_right * _loss(after_right, (*observations, (index, True)))
            - p_wrong * _loss(after_wrong, (*observations, (index, False)))
        )
        uncertainty_gain = (
            uncertainty - p_right * _uncertainty(after_right) - p_wrong * _uncertainty(after_wrong)
        )
        gains.append((loss_gain + UNCERTAINTY_WEIGHT * uncertainty_gain, index))
    verdicts = tuple(_verdicts(_mastery(posterior), observations))
    return _Plan(loss, tuple(gains), tuple(_mastery(posterior)), verdicts)


def _verdicts(mastery: Sequence[float], observations: Iterable[tuple[int, bool]]) -> list[bool]:
    """Validated or not, per skill of a tube, from the model's P(mastered) and two rules of
    fairness. No credit without evidence: nothing above the highest success is validated unless
    a failure higher up bounds the gap. And the student's own answers are never overruled by
    what other tubes suggest: when they agree with each other (every success below every
    failure), the line falls between them and the model only places it inside that gap. Only
    answers that contradict each other (a slip or a lucky guess) are arbitrated by the model."""
    successes = [i for i, correct in observations if correct]
    failures = [i for i, correct in observations if not correct]
    highest_success = max(successes, default=-1)
    lowest_failure = min(failures, default=len(mastery))
    if highest_success >= lowest_failure:
        return [p >= 0.5 and i <= highest_success for i, p in enumerate(mastery)]
    bounded = lowest_failure < len(mastery)
    return [
        i <= highest_success or (bounded and i < lowest_failure and p >= 0.5)
        for i, p in enumerate(mastery)
    ]


def _better(option: tuple[float, str], than: tuple[float, str]) -> bool:
    """Higher value wins; equal values go to the smaller skill id, so choices are reproducible."""
    if option[0] > than[0] + 1e-9:
        return True
    return abs(option[0] - than[0]) <= 1e-9 and option[1] < than[1]


def _best(options: Iterable[tuple[float, str]]) -> tuple[float, str]:
    iterator = iter(options)
    chosen = next(iterator)
    for option in iterator:
        if _better(option, chosen):
            chosen = option
    return chosen


class Adaptive:
    name = "adaptive"

    def __init__(self, close_below: float = CLOSE_TUBE_BELOW, min_gain: float = MIN_GAIN) -> None:
        self.close_below = close_below
        self.min_gain = min_gain

    # The evidence: this assessment's answers, and what was known before it.
    def _observations(self, situation: Situation) -> dict[str, list[tuple[int, bool]]]:
        profile = situation.profile
        evidence: dict[str, list[tuple[int, bool]]] = {}
        for skill_id, element in situation.known.items():
            # Only answers are evidence: inferred elements were concluded from a few answers,
            # and counting them again would make the model overconfident.
            if (
                skill_id in profile.skills
                and skill_id not in situation.recorded_here
                and element.source is Source.DIRECT
            ):
                evidence.setdefault(profile.tube_of[skill_id].id, []).append(
                    (profile.position[skill_id], element.status is Status.VALIDATED)
                )
        for step in situation.steps:
            skill_id = step.challenge.skill_id
            if skill_id in profile.skills:
                evidence.setdefault(profile.tube_of[skill_id].id, []).append(
                    (profile.position[skill_id], step.result.validated)
                )
        return evidence

    @staticmethod
    def _tube_prior(
        situation: Situation, evidence: Mapping[str, list[tuple[int, bool]]]
    ) -> tuple[float, float]:
        """A tube's prior: centred on the student's overall level, as wide as both the tube's
        own scatter and our uncertainty on that level (quantised: plans stay cacheable)."""
        observed = (
            (tube.levels, tuple(sorted(evidence[tube.id])))
            for tube in situation.profile.tubes
            if evidence.get(tube.id)
        )
        mean, uncertainty = _ability(observed)
        spread = math.sqrt(TUBE_SPREAD**2 + uncertainty**2)
        return round(mean * 4) / 4, round(spread * 10) / 10

    def _state(self, situation: Situation) -> list[tuple[TubeIndex, _Plan]]:
        evidence = self._observations(situation)
        mean, spread = self._tube_prior(situation, evidence)
        profile = situation.profile
        asked_positions: dict[str, set[int]] = {}
        for skill_id in (*situation.known, *(step.challenge.skill_id for step in situation.steps)):
            tube = profile.tube_of.get(skill_id)
            if tube is not None:
                asked_positions.setdefault(tube.id, set()).add(profile.position[skill_id])
        return [
            (
                tube,
                _tube_plan(
                    tube.levels,
                    tuple(sorted(evidence.get(tube.id, ()))),
                    frozenset(asked_positions.get(tube.id, ())),
                    mean,
                    spread,
                ),
            )
            for tube in profile.tubes
        ]

    def _playable_gains(
        self, tube: TubeIndex, plan: _Plan, situation: Situation
    ) -> list[tuple[float, int]]:
        return [(g, i) for g, i in plan.gains if situation.profile.playable[tube.skills[i].id]]

    def _is_closed(self, tube: TubeIndex, plan: _Plan, situation: Situation) -> bool:
        """Closed: nothing useful left to ask, or (nearly) sure after at least one piece of
        evidence about this very tube (the overall level alone never settles a tube)."""
        gains = self._playable_gains(tube, plan, situation)
        if not gains or max(g for g, _ in gains) <= 1e-9:
            return True
        if plan.loss > self.close_below:
            return False
        # Without evidence in this tube, only "not mastered" may be concluded (no credit is given
        # for skills never asked): such skills simply stay without knowledge.
        return plan.observed or all(p < 0.5 for p in plan.mastery)

    def next_challenge(self, situation: Situation) -> Challenge | None:
        profile = situation.profile
        after_timed = not situation.steps or situation.last_was_timed
        # Per tube, the most valuable question: overall, and among untimed ones.
        best: tuple[float, str] | None = None
        best_untimed: tuple[float, str] | None = None
        owed: list[tuple[float, str]] = []  # tubes that need a first answer before any credit
        for tube, plan in self._state(situation):
            if self._is_closed(tube, plan, situation):
                continue
            must_ask = not plan.observed and max(plan.mastery) >= 0.5
            for gain, index in self._playable_gains(tube, plan, situation):
                skill_id = tube.skills[index].id
                option = (gain, skill_id)
                if best is None or _better(option, best):
                    best = option
                if skill_id in profile.untimed and (
                    best_untimed is None or _better(option, best_untimed)
                ):
                    best_untimed = option
                if must_ask:
                    owed.append(option)
        if best is None:
            return None
        avoid_timed = after_timed and best_untimed is not None
        chosen = best_untimed if avoid_timed and best_untimed is not None else best
        # The test goes on while any question is worth asking; after a timed one, an untimed
        # one comes in between even when it is worth less.
        if best[0] < self.min_gain:
            # Not worth another question, except where the student would otherwise get no
            # credit for a tube they probably master.
            if not owed:
                return None
            untimed_owed = [o for o in owed if o[1] in profile.untimed]
            avoid_timed = after_timed and bool(untimed_owed)
            chosen = _best(untimed_owed if avoid_timed else owed)
        skill = profile.skills[chosen[1]]
        return _choose_challenge(
            skill, profile.playable[skill.id], situation, avoid_timed=avoid_timed
        )

    def _record(self, situation: Situation, *, only_closed: bool) -> list[NewKnowledge]:
        answered_here = {step.challenge.skill_id: step.result.validated for step in situation.steps}
        new: list[NewKnowledge] = []
        for tube, plan in self._state(situation):
            if any(s.id in situation.recorded_here for s in tube.skills):
                continue  # already recorded when it closed
            if only_closed and not self._is_closed(tube, plan, situation):
                continue
            if not any(s.id in answered_here for s in tube.skills):
                continue  # nothing asked here: nothing new to say
            for index, skill in enumerate(tube.skills):
                if skill.id in situation.known:
                    continue
                validated = plan.verdicts[index]
                # "Direct" only where the verdict is what the student answered; a verdict that
                # arbitrates contradicting answers is an inference.
                direct = answered_here.get(skill.id) == validated
                new.append(
                    NewKnowledge(
                        skill,
                        Status.VALIDATED if validated else Status.INVALIDATED,
                        Source.DIRECT if direct else Source.INFERRED,
                    )
                )
        return new

    def record_answer(self, situation: Situation) -> list[NewKnowledge]:
        return self._record(situation, only_closed=True)

    def record_end(self, situation: Situation) -> list[NewKnowledge]:
        return self._record(situation, only_closed=False)


def clear_caches() -> None:
    """Forget every memoised computation (benchmarks measure the cold case with it)."""
    for function in (_prior, _posterior, _ability_evidence, _tube_plan):
        function.cache_clear()


SELECTORS: dict[str, Selector] = {"baseline": Baseline(), "adaptive": Adaptive()}
DEFAULT_SELECTOR = "adaptive"
