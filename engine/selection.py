"""Choosing the next challenge, and the knowledge an assessment records.

Two selectors share one interface:

- `Baseline` reproduces the reference "smart random" algorithm: easy tubes first, level 2 first,
  a level estimate θ, the too-difficult filter, the reward, never two timed challenges in a row,
  a deterministic pick; knowledge is recorded after every answer by the reference inference
  (a success validates the easier skills of the tube, a failure invalidates the harder ones).

- `Adaptive` (the improved selector) keeps, for every tube, a probability distribution over how
  far up the tube the student masters, updated by every answer with a noise model (slips and
  guesses, at a rate learnt from the student's answers) and a prior from the level of the
  tube's area, itself drawn towards the student's overall level as far as their answers say
  their areas are related. It asks the question that most reduces the expected number of
  wrongly classified skills, closes a tube once that expectation is small, and then records
  the whole tube at once from the posterior: noisy answers no longer cascade into wrong
  inferences, and confident tubes stop early. It does not stop before every competence has a
  direct answer, and never asks more than half the profile.

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
MAX_QUESTIONS_SHARE = 0.5  # the adaptive selector asks at most half the profile's skills
CAP_FLOOR = 12  # a small profile is not cut to a handful of questions
PROGRESS_CAP = 0.95  # a test in progress never shows as done
BASELINE_SETTLED_PER_ANSWER = 1.7
PROGRESS_SCALE = 0.8  # answers per halving of a tube's undecided skills
UNDECIDED = (0.1, 0.9)  # P(mastered) between these: a skill not decided yet


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
    competence_id: str = ""
    area_id: str = ""  # the area of the tube's competence ("3.2" is in area "3")
    playable: frozenset[int] = frozenset()  # indexes of skills with a challenge to ask
    untimed: frozenset[int] = frozenset()  # … with one that has no timer

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(s.level for s in self.skills))
        object.__setattr__(self, "competence_id", self.skills[0].competence_id)
        object.__setattr__(self, "area_id", self.competence_id.split(".", 1)[0])
        playable = [i for i, s in enumerate(self.skills) if s.playable_challenges]
        untimed = [
            i for i in playable if any(not c.is_timed for c in self.skills[i].playable_challenges)
        ]
        object.__setattr__(self, "playable", frozenset(playable))
        object.__setattr__(self, "untimed", frozenset(untimed))

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
    # The competences of the profile's skills that may be asked (a field, not a cached property:
    # compiled classes have no __dict__ to cache it in, engine/native.py).
    competences: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        competences = (s.competence_id for s in self.skills.values() if self.playable[s.id])
        object.__setattr__(self, "competences", frozenset(competences))

    def question_cap(self, share: float) -> int:
        """The longest a test may be: that share of the profile's skills, never fewer than one
        question per competence, nor than CAP_FLOOR questions when there are as many skills."""
        return max(
            len(self.competences),
            math.ceil(share * len(self.skills)),
            min(len(self.skills), CAP_FLOOR),
        )

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


def uncovered_competences(situation: Situation) -> frozenset[str]:
    """The profile's competences without a direct answer yet: none in this test, none from an
    earlier one (a test does not end before each has one, when a question remains)."""
    profile = situation.profile
    answered = {
        profile.skills[skill_id].competence_id
        for skill_id, element in situation.known.items()
        if element.source is Source.DIRECT and skill_id in profile.skills
    }
    answered.update(
        profile.skills[step.challenge.skill_id].competence_id
        for step in situation.steps
        if step.challenge.skill_id in profile.skills
    )
    return profile.competences - answered


class Selector(Protocol):
    name: str

    def next_challenge(self, situation: Situation) -> Challenge | None: ...

    def record_answer(self, situation: Situation) -> list[NewKnowledge]:
        """Knowledge to record after the last step of `situation`."""
        ...

    def record_end(self, situation: Situation) -> list[NewKnowledge]:
        """Knowledge to record when the test ends (nothing left to ask)."""
        ...

    def progress(self, situation: Situation) -> float:
        """How far the test has gone, estimated: in [0, PROGRESS_CAP] while questions remain
        (the caller shows the highest estimate so far, and 100 % once the test is over)."""
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
            theta = self._level(situation)
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
    def _level(situation: Situation) -> float:
        """θ from the direct knowledge on the profile's skills."""
        profile = situation.profile
        return estimate_level(
            (profile.skills[skill_id].level, k.status is Status.VALIDATED)
            for skill_id, k in situation.known.items()
            if k.source is Source.DIRECT and skill_id in profile.skills
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

    def progress(self, situation: Situation) -> float:
        """Answers so far against those plus the skills still open to a question, each answer
        settling about BASELINE_SETTLED_PER_ANSWER of them (the inference of the tube)."""
        answered = len(situation.steps)
        if not answered:
            return 0.0
        profile = situation.profile
        theta = self._level(situation)
        open_skills = sum(
            1
            for s in profile.skills.values()
            if profile.playable[s.id]
            and s.id not in situation.known
            and s.level - theta <= TOO_DIFFICULT
        )
        remaining = open_skills / BASELINE_SETTLED_PER_ANSWER
        return min(PROGRESS_CAP, answered / (answered + remaining))


# -- the improved selector -----------------------------------------------------------------------

# The student's noise is learnt from their answers among a few classes (slip, guess, prior
# weight): a student whose answers never contradict each other is soon believed, one who clicks
# at random soon is not.
NOISE_CLASSES = ((0.03, 0.05, 0.25), (0.10, 0.20, 0.50), (0.25, 0.40, 0.25))
CLOSE_TUBE_BELOW = 0.05  # a tube this sure of (expected wrong skills) is recorded at once
MIN_GAIN = 0.32  # a question must be worth this much (expected errors and uncertainty removed)
TUBE_SPREAD = 0.8  # how far a tube’s level strays from the level of its area
# How far an area's level strays from the student's overall level, learnt from their answers
# between related areas and unrelated ones (spread, prior weight).
AREA_SPREADS = ((0.5, 0.6), (2.5, 0.4))
UNCERTAINTY_WEIGHT = 0.5
OUTLIER_SHARE = 0.10
ABILITY_GRID = tuple(x / 2 for x in range(-2, 19))  # levels −1 … 9
ABILITY_PRIOR_MEAN, ABILITY_PRIOR_SPREAD = 3.0, 2.5

Noise = tuple[float, float]  # (slip, guess)
TubeKey = tuple[tuple[int, ...], tuple[tuple[int, bool], ...]]  # (levels, observations)


def _gauss(x: float, mean: float, spread: float) -> float:
    return math.exp(-((x - mean) ** 2) / (2 * spread * spread))


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _logsumexp(values: Iterable[float]) -> float:
    values = list(values)
    top = max(values)
    return top + math.log(sum([math.exp(v - top) for v in values]))


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


@lru_cache(maxsize=65536)
def _likelihoods(
    levels: tuple[int, ...], observations: tuple[tuple[int, bool], ...], noise: Noise
) -> tuple[float, ...]:
    """P(observations | the student masters exactly the first k skills), k = 0 … K."""
    slip, guess = noise
    out = []
    for k in range(len(levels) + 1):
        value = 1.0
        for index, correct in observations:
            p = (1 - slip) if index < k else guess
            value *= p if correct else 1 - p
        out.append(value)
    return tuple(out)


@lru_cache(maxsize=65536)
def _posterior(
    levels: tuple[int, ...],
    observations: tuple[tuple[int, bool], ...],
    mean: float,
    spread: float,
    noise: Noise,
) -> tuple[float, ...]:
    """P(the student masters exactly the first k skills of the tube | evidence), k = 0 … K."""
    weights = [
        p * q
        for p, q in zip(
            _prior(levels, mean, spread), _likelihoods(levels, observations, noise), strict=True
        )
    ]
    total = sum(weights) or 1.0
    return tuple(w / total for w in weights)


@lru_cache(maxsize=65536)
def _tube_evidence(
    levels: tuple[int, ...], observations: tuple[tuple[int, bool], ...], noise: Noise
) -> tuple[float, ...]:
    """log P(this tube's observations | its area's level b), for every b of the grid."""
    likelihoods = _likelihoods(levels, observations, noise)
    return tuple(
        math.log(
            max(
                sum(
                    p * q for p, q in zip(_prior(levels, b, TUBE_SPREAD), likelihoods, strict=True)
                ),
                1e-300,
            )
        )
        for b in ABILITY_GRID
    )


def _kernel(spread: float) -> tuple[tuple[float, ...], ...]:
    """P(area level b | overall level a) on the grid, one row per a."""
    rows = []
    for a in ABILITY_GRID:
        row = [_gauss(b, a, spread) for b in ABILITY_GRID]
        total = sum(row)
        rows.append(tuple(w / total for w in row))
    return tuple(rows)


_KERNELS = {spread: _kernel(spread) for spread, _ in AREA_SPREADS}


@lru_cache(maxsize=16384)
def _area_evidence(tubes: tuple[TubeKey, ...], noise: Noise) -> tuple[float, ...]:
    """log P(the area's observations | the area's level b), for every b of the grid."""
    total = [0.0] * len(ABILITY_GRID)
    for levels, observations in tubes:
        total = list(map(operator.add, total, _tube_evidence(levels, observations, noise)))
    return tuple(total)


@lru_cache(maxsize=16384)
def _area_likelihoods(tubes: tuple[TubeKey, ...]) -> tuple[tuple[float, ...], ...]:
    """`_area_likelihood` for each cell, in the order of _CELLS: one look-up per area (hashing
    the long keys is a real share of the work)."""
    return tuple(_area_likelihood(tubes, noise, spread) for _, noise, spread in _CELLS)


def _area_likelihood(tubes: tuple[TubeKey, ...], noise: Noise, spread: float) -> tuple[float, ...]:
    """log P(the area's observations | the overall level a), for every a of the grid."""
    evidence = _area_evidence(tubes, noise)
    top = max(evidence)
    scaled = [math.exp(e - top) for e in evidence]
    return tuple(
        top + math.log(max(sum(map(operator.mul, row, scaled)), 1e-300)) for row in _KERNELS[spread]
    )


_ABILITY_LOG_PRIOR = tuple(
    -((a - ABILITY_PRIOR_MEAN) ** 2) / (2 * ABILITY_PRIOR_SPREAD**2) for a in ABILITY_GRID
)


@dataclass(frozen=True)
class _Student:
    """What the answers say about the student as a whole: their noise class, their overall
    level and how related their areas are; and, per area, where its level lies."""

    noise: Noise
    # For each area given, in order: (mean, spread) of the level of its tubes' area (in order
    # too), from everything but the tube's own answers (which its posterior counts: not twice)
    tubes: tuple[tuple[tuple[float, float], ...], ...]
    areas: Mapping[str, tuple[float, float]]  # area id -> (mean, spread) of its level
    default: tuple[float, float]  # an area never observed


@lru_cache(maxsize=4096)
def _student(areas: tuple[tuple[str, tuple[TubeKey, ...]], ...]) -> _Student:
    """The posterior over noise class × area relatedness × overall level, given every observed
    area; then each observed area's level given its own tubes and what the *other* areas say of
    the student (an answer is counted once)."""
    own = [_area_likelihoods(tubes) for _, tubes in areas]  # per area, per cell
    cells: list[_Cell] = []
    for c, (log_prior, noise, spread) in enumerate(_CELLS):
        total = list(_ABILITY_LOG_PRIOR)
        for likelihoods in own:
            total = list(map(operator.add, total, likelihoods[c]))
        cells.append((log_prior, noise, spread, total))
    overall, class_weights = _overall(cells)
    slip = sum(w * n[0] for w, n in zip(class_weights, NOISE_CLASSES, strict=True))
    guess = sum(w * n[1] for w, n in zip(class_weights, NOISE_CLASSES, strict=True))
    noise = (round(slip * 50) / 50, round(guess * 50) / 50)  # quantised: plans stay cacheable
    slip, guess, _ = NOISE_CLASSES[max(range(len(class_weights)), key=class_weights.__getitem__)]
    likeliest = (slip, guess)
    summaries: dict[str, tuple[float, float]] = {}
    by_tube = []
    for (area_id, tubes), likelihoods in zip(areas, own, strict=True):
        others = [
            (log_prior, cell_noise, spread, list(map(operator.sub, total, mine)))
            for (log_prior, cell_noise, spread, total), mine in zip(cells, likelihoods, strict=True)
        ]
        summaries[area_id], each = _area_levels(tubes, likeliest, _overall(others)[0])
        by_tube.append(each)
    return _Student(noise, tuple(by_tube), summaries, _summary(_area_prior(overall)))


_Cell = tuple[float, Noise, float, list[float]]  # log prior, noise, area spread, log P(·, a)
# (log prior, noise, area spread) of each cell, in a fixed order
_CELLS = tuple(
    (math.log(weight * spread_weight), (slip, guess), spread)
    for slip, guess, weight in NOISE_CLASSES
    for spread, spread_weight in AREA_SPREADS
)
_CLASS_INDEX = {(slip, guess): i for i, (slip, guess, _) in enumerate(NOISE_CLASSES)}


def _overall(cells: Sequence[_Cell]) -> tuple[AreaPrior, list[float]]:
    """The overall level and the relatedness of areas, as an area's prior (quantised: an area
    whose inputs did not change keeps its cached level), and the weight of each noise class."""
    exp, log = math.exp, math.log
    # Per cell, P(·, a) up to a factor (its largest term is 1) and the sum of those terms: the
    # same exponentials give the cell's weight and its levels.
    scaled = []
    logs = []
    for log_prior, _, _, total in cells:
        top = max(total)
        terms = [exp(t - top) for t in total]
        cell_norm = sum(terms)
        scaled.append((terms, cell_norm))
        logs.append(log_prior + (top + log(cell_norm)))
    norm = _logsumexp(logs)
    class_weights = [0.0] * len(NOISE_CLASSES)
    spread_weights: dict[float, float] = {}
    level_weights = [0.0] * len(ABILITY_GRID)
    for (_, noise, spread, _), (terms, cell_norm), log_w in zip(cells, scaled, logs, strict=True):
        w = exp(log_w - norm)
        class_weights[_CLASS_INDEX[noise]] += w
        spread_weights[spread] = spread_weights.get(spread, 0.0) + w
        factor = w / cell_norm
        level_weights = [
            weight + factor * term for weight, term in zip(level_weights, terms, strict=True)
        ]
    mean, spread = _summary(level_weights)
    prior = (
        round(mean * 8) / 8,
        round(spread * 20) / 20,
        tuple((spread, round(w * 20) / 20) for spread, w in sorted(spread_weights.items())),
    )
    return prior, class_weights


AreaPrior = tuple[float, float, tuple[tuple[float, float], ...]]  # mean, spread, relatedness


@lru_cache(maxsize=4096)
def _area_prior(prior: AreaPrior) -> tuple[float, ...]:
    """An area's level before its own answers: normal around the overall level, as wide as the
    learnt relatedness and our uncertainty on the overall level."""
    mean, uncertainty, spreads = prior
    widths = [(w, math.sqrt(uncertainty**2 + spread**2)) for spread, w in spreads]
    return tuple(
        sum(w * _gauss(b, mean, width) / width for w, width in widths) for b in ABILITY_GRID
    )


@lru_cache(maxsize=16384)
def _area_levels(
    tubes: tuple[TubeKey, ...], noise: Noise, prior: AreaPrior
) -> tuple[tuple[float, float], tuple[tuple[float, float], ...]]:
    """The area's level given its tubes' answers, and, for each tube, given the others'."""
    weights = _area_prior(prior)
    evidence = _area_evidence(tubes, noise)

    def level(log_likelihoods: Sequence[float]) -> tuple[float, float]:
        top = max(log_likelihoods)
        return _summary(
            [p * math.exp(e - top) for p, e in zip(weights, log_likelihoods, strict=True)]
        )

    return level(evidence), tuple(
        level(list(map(operator.sub, evidence, _tube_evidence(*tube, noise)))) for tube in tubes
    )


def _summary(weights: Sequence[float]) -> tuple[float, float]:
    total = sum(weights) or 1.0
    mean = sum(map(operator.mul, weights, ABILITY_GRID)) / total
    variance = sum(map(operator.mul, weights, _GRID_SQUARES)) / total - mean * mean
    return mean, math.sqrt(max(variance, 0.0))


_GRID_SQUARES = tuple(b * b for b in ABILITY_GRID)


def _mastery(posterior: Sequence[float]) -> list[float]:
    """P(skill j is mastered) = P(k > j) for each skill index j."""
    tails = list(itertools.accumulate(reversed(posterior[1:])))  # P(k ≥ K), P(k ≥ K − 1), …
    tails.reverse()
    return tails


def _loss(mastery: Sequence[float], highest_success: int, lowest_failure: int) -> float:
    """Expected number of skills the verdicts we would record now get wrong (`mastery`: P(skill
    mastered); the bounds: as `_bounds` gives them)."""
    verdicts = _verdicts(mastery, highest_success, lowest_failure)
    return sum([(1 - p) if v else p for p, v in zip(mastery, verdicts, strict=True)])


def _uncertainty(mastery: Sequence[float]) -> float:
    """Σ p(1 − p) over the skills: unlike the loss, every informative answer lowers it, even one
    that flips no decision (so confident-but-unchecked tubes still get their question)."""
    return sum([p * (1 - p) for p in mastery])


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
    noise: Noise,
) -> _Plan:
    """The tube's current loss and, for each skill index not yet asked, the expected reduction
    of uncertainty from asking it."""
    posterior = _posterior(levels, observations, mean, spread, noise)
    mastery = _mastery(posterior)
    highest, lowest = _bounds(observations, len(levels))
    loss, uncertainty = _loss(mastery, highest, lowest), _uncertainty(mastery)
    total = sum(posterior)
    slip, guess = noise
    gains = []
    for index in range(len(levels)):
        if index in asked:
            continue
        # After an answer to skill `index`, P(skill j mastered) follows from the tails of the
        # posterior (P(k > j), the mastery) without updating it: a success multiplies
        # P(k ≤ index) by the guess rate and the rest by 1 − slip; a failure by 1 − guess and
        # by the slip rate.
        p_right, loss_right, uncertainty_right = _after_answer(
            mastery, total, index, guess, 1 - slip, max(highest, index), lowest
        )
        p_wrong, loss_wrong, uncertainty_wrong = _after_answer(
            mastery, total, index, 1 - guess, slip, highest, min(lowest, index)
        )
        loss_gain = loss - p_right * loss_right - p_wrong * loss_wrong
        uncertainty_gain = uncertainty - p_right * uncertainty_right - p_wrong * uncertainty_wrong
        gains.append((loss_gain + UNCERTAINTY_WEIGHT * uncertainty_gain, index))
    verdicts = tuple(_verdicts(mastery, highest, lowest))
    return _Plan(loss, tuple(gains), tuple(mastery), verdicts)


def _answered(
    mastery: Sequence[float], total: float, index: int, unknown: float, known: float
) -> tuple[float, Sequence[float]]:
    """P(this answer to skill `index`) and P(skill j mastered) after it, from the mastery before
    (P(k > j)) and the posterior's total: `unknown` and `known` are the answer's probability
    when the skill is not mastered (k ≤ index) and when it is."""
    above = mastery[index]  # P(k > index): the skill is mastered
    p_answer = unknown * (total - above) + known * above
    if not p_answer:
        return p_answer, mastery
    below = known * above
    return p_answer, [
        (below + unknown * (tail - above) if j < index else known * tail) / p_answer
        for j, tail in enumerate(mastery)
    ]


def _after_answer(
    mastery: Sequence[float],
    total: float,
    index: int,
    unknown: float,
    known: float,
    highest_success: int,
    lowest_failure: int,
) -> tuple[float, float, float]:
    """P(this answer to skill `index`), and the loss and uncertainty after it (the bounds: the
    tube's answers with this one): `_loss` and `_uncertainty` of what `_answered` gives, in one
    pass, without the lists (the same operations in the same order, so the same floats)."""
    above = mastery[index]
    p_answer = unknown * (total - above) + known * above
    if not p_answer:
        return p_answer, _loss(mastery, highest_success, lowest_failure), _uncertainty(mastery)
    below = known * above
    bounded = lowest_failure < len(mastery)
    agreeing = highest_success < lowest_failure
    loss = uncertainty = 0.0
    for j, tail in enumerate(mastery):
        p = (below + unknown * (tail - above) if j < index else known * tail) / p_answer
        if agreeing:
            validated = j <= highest_success or (bounded and j < lowest_failure and p >= 0.5)
        else:
            validated = p >= 0.5 and j <= highest_success
        loss += (1 - p) if validated else p
        uncertainty += p * (1 - p)
    return p_answer, loss, uncertainty


def _verdicts(mastery: Sequence[float], highest_success: int, lowest_failure: int) -> list[bool]:
    """Validated or not, per skill of a tube, from the model's P(mastered) and two rules of
    fairness. No credit without evidence: nothing above the highest success is validated unless
    a failure higher up bounds the gap. And the student's own answers are never overruled by
    what other tubes suggest: when they agree with each other (every success below every
    failure), the line falls between them and the model only places it inside that gap. Only
    answers that contradict each other (a slip or a lucky guess) are arbitrated by the model.
    The bounds are those of the tube's answers, as `_bounds` gives them."""
    if highest_success >= lowest_failure:
        return [p >= 0.5 and i <= highest_success for i, p in enumerate(mastery)]
    bounded = lowest_failure < len(mastery)
    return [
        i <= highest_success or (bounded and i < lowest_failure and p >= 0.5)
        for i, p in enumerate(mastery)
    ]


def _bounds(observations: Iterable[tuple[int, bool]], skills: int) -> tuple[int, int]:
    """The highest success (−1 without one) and the lowest failure (`skills` without one)."""
    successes = [i for i, correct in observations if correct]
    failures = [i for i, correct in observations if not correct]
    return max(successes, default=-1), min(failures, default=skills)


def _better(option: tuple[float, str], than: tuple[float, str]) -> bool:
    """Higher value wins; equal values go to the smaller skill id, so choices are reproducible."""
    if option[0] > than[0] + 1e-9:
        return True
    return abs(option[0] - than[0]) <= 1e-9 and option[1] < than[1]


def _top(tube: TubeIndex, gains: Sequence[tuple[float, int]]) -> tuple[float, str]:
    """A tube's most valuable question, (value, skill id), as `_better` orders them."""
    value = max(gains)[0]
    return value, min(tube.skills[i].id for g, i in gains if g >= value - 1e-9)


def _best(options: Iterable[tuple[float, str]]) -> tuple[float, str]:
    iterator = iter(options)
    chosen = next(iterator)
    for option in iterator:
        if _better(option, chosen):
            chosen = option
    return chosen


# A tube still open: its plan, its playable gains, whether its competence is owed an answer.
_OpenTube = tuple[TubeIndex, _Plan, list[tuple[float, int]], bool]


class Adaptive:
    name = "adaptive"

    def __init__(
        self,
        close_below: float = CLOSE_TUBE_BELOW,
        min_gain: float = MIN_GAIN,
        max_share: float = MAX_QUESTIONS_SHARE,
    ) -> None:
        self.close_below = close_below
        self.min_gain = min_gain
        self.max_share = max_share
        # The state of the last situation seen: choosing the next question and estimating the
        # progress look at the same situation, one after the other, once per answer.
        self._last: tuple[Situation, list[tuple[TubeIndex, _Plan]]] | None = None
        self._last_open: tuple[Situation, list[_OpenTube]] | None = None

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

    def _state(self, situation: Situation) -> list[tuple[TubeIndex, _Plan]]:
        last = self._last
        if last is not None and last[0] is situation:
            return last[1]
        state = self._plans(situation)
        self._last = (situation, state)
        return state

    def _plans(self, situation: Situation) -> list[tuple[TubeIndex, _Plan]]:
        """Every tube with its plan, given the student model of this situation."""
        evidence = self._observations(situation)
        profile = situation.profile
        by_area: dict[str, list[TubeIndex]] = {}
        observed: dict[str, tuple[tuple[int, bool], ...]] = {}  # tube id -> its observations
        for tube in profile.tubes:
            if evidence.get(tube.id):
                observed[tube.id] = tuple(sorted(evidence[tube.id]))
                by_area.setdefault(tube.area_id, []).append(tube)
        areas = sorted(by_area.items())
        student = _student(
            tuple(
                (area, tuple((tube.levels, observed[tube.id]) for tube in tubes))
                for area, tubes in areas
            )
        )
        area_of_tube = {  # observed tube id -> (mean, spread) of its area's level
            tube.id: summary
            for (_, tubes), summaries in zip(areas, student.tubes, strict=True)
            for tube, summary in zip(tubes, summaries, strict=True)
        }
        asked_positions: dict[str, set[int]] = {}
        for skill_id in (*situation.known, *(step.challenge.skill_id for step in situation.steps)):
            holder = profile.tube_of.get(skill_id)
            if holder is not None:
                asked_positions.setdefault(holder.id, set()).add(profile.position[skill_id])
        state = []
        for tube in profile.tubes:
            # A tube's prior: centred on its area's level, as wide as both the tube's own
            # scatter and our uncertainty on that level (quantised: plans stay cacheable).
            observations = observed.get(tube.id, ())
            mean, uncertainty = (
                area_of_tube[tube.id]
                if observations
                else student.areas.get(tube.area_id, student.default)
            )
            spread = math.sqrt(TUBE_SPREAD**2 + uncertainty**2)
            plan = _tube_plan(
                tube.levels,
                observations,
                frozenset(asked_positions.get(tube.id, ())),
                round(mean * 4) / 4,
                round(spread * 10) / 10,
                student.noise,
            )
            state.append((tube, plan))
        return state

    @staticmethod
    def _playable_gains(tube: TubeIndex, plan: _Plan) -> list[tuple[float, int]]:
        playable = tube.playable
        return [(g, i) for g, i in plan.gains if i in playable]

    def _is_closed(self, plan: _Plan, gains: Sequence[tuple[float, int]]) -> bool:
        """Closed: nothing useful left to ask (`gains`: the tube's playable ones), or (nearly)
        sure after at least one piece of evidence about this very tube (the overall level alone
        never settles a tube)."""
        if not gains or max(gains)[0] <= 1e-9:
            return True
        if plan.loss > self.close_below:
            return False
        # Without evidence in this tube, only "not mastered" may be concluded (no credit is given
        # for skills never asked): such skills simply stay without knowledge.
        return plan.observed or all(p < 0.5 for p in plan.mastery)

    def _open_tubes(self, situation: Situation) -> list[_OpenTube]:
        """The tubes still worth a question, or owed one (their competence has no answer yet):
        each with its plan, its playable gains and whether its competence is owed. Remembered
        for the last situation, as its state is (the next question, then the progress)."""
        last = self._last_open
        if last is not None and last[0] is situation:
            return last[1]
        uncovered = uncovered_competences(situation)
        open_tubes = []
        for tube, plan in self._state(situation):
            gains = self._playable_gains(tube, plan)
            owed = tube.competence_id in uncovered
            if gains and (owed or not self._is_closed(plan, gains)):
                open_tubes.append((tube, plan, gains, owed))
        self._last_open = (situation, open_tubes)
        return open_tubes

    def next_challenge(self, situation: Situation) -> Challenge | None:
        profile = situation.profile
        left = profile.question_cap(self.max_share) - len(situation.steps)
        open_tubes = self._open_tubes(situation)
        owed_competences = {tube.competence_id for tube, _, _, owed in open_tubes if owed}
        if left <= len(owed_competences):
            # The questions left are those owed: every competence gets its answer, even past
            # the longest test.
            open_tubes = [entry for entry in open_tubes if entry[3]]
        after_timed = not situation.steps or situation.last_was_timed
        # Per tube, the most valuable question: overall, and among untimed ones.
        best: tuple[float, str] | None = None
        best_untimed: tuple[float, str] | None = None
        # Owed questions: a competence not asked yet (no verdict from a handful of questions),
        # a tube that needs a first answer before any credit.
        owed: list[tuple[float, str]] = []
        for tube, plan, gains, uncovered in open_tubes:
            must_ask = uncovered or (not plan.observed and max(plan.mastery) >= 0.5)
            top = _top(tube, gains)
            if best is None or _better(top, best):
                best = top
            untimed = [(g, i) for g, i in gains if i in tube.untimed]
            top_untimed = _top(tube, untimed) if untimed else None
            if top_untimed is not None and (
                best_untimed is None or _better(top_untimed, best_untimed)
            ):
                best_untimed = top_untimed
            if must_ask:
                owed.append(top)
                if top_untimed is not None:
                    owed.append(top_untimed)
        if best is None:
            return None
        avoid_timed = after_timed and best_untimed is not None
        chosen = best_untimed if avoid_timed and best_untimed is not None else best
        # The test goes on while any question is worth asking; after a timed one, an untimed
        # one comes in between even when it is worth less.
        if best[0] < self.min_gain:
            # Not worth another question, except what is owed.
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
            if only_closed and not self._is_closed(plan, self._playable_gains(tube, plan)):
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

    def progress(self, situation: Situation) -> float:
        """Answers so far against those plus the answers still expected: for every tube still
        open, about as many as halvings of its undecided skills; at least one per competence
        not asked yet; never beyond the longest test."""
        answered = len(situation.steps)
        if not answered:
            return 0.0
        profile = situation.profile
        expected = 0.0
        owed: set[str] = set()  # competences still owed an answer: one each at least
        for tube, plan, gains, uncovered in self._open_tubes(situation):
            worth = sum(1 for g, _ in gains if g >= self.min_gain)
            undecided = sum(1 for p in plan.mastery if UNDECIDED[0] < p < UNDECIDED[1])
            here = PROGRESS_SCALE * min(worth, math.log2(1 + undecided))
            if uncovered and tube.competence_id not in owed:
                owed.add(tube.competence_id)
                here = max(here, 1.0)
            expected += here
        expected = min(expected, profile.question_cap(self.max_share) - answered)
        return min(PROGRESS_CAP, answered / (answered + max(expected, 0.0)))


def clear_caches() -> None:
    """Forget every memoised computation (benchmarks measure the cold case with it)."""
    for function in (
        _prior,
        _likelihoods,
        _posterior,
        _tube_evidence,
        _area_evidence,
        _area_likelihoods,
        _area_prior,
        _area_levels,
        _student,
        _tube_plan,
    ):
        function.cache_clear()


SELECTORS: dict[str, Selector] = {"baseline": Baseline(), "adaptive": Adaptive()}
DEFAULT_SELECTOR = "adaptive"
