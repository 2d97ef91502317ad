"""Simulated learners take the same tests under each selector; prints questions, accuracy, speed.

    python -m bench.engine [--json] [--learners N] [--seed S]

Every algorithm meets the same learners with the same answer noise (each learner's answers come
from a random generator seeded by the learner's number). The target profile is the bundled
pack's "cycle 4" profile (about 60 skills). Selection time is measured per call on that profile
and on a synthetic 1,000-skill profile, one core.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from dataclasses import dataclass

from bench.common import percentile
from engine.content import Challenge, ChallengeType, ContentPack, Skill, load_pack
from engine.selection import SELECTORS, ProfileIndex, Selector, Situation, clear_caches
from engine.simulation import agreement, measured_mastery, random_learner, run, true_mastery

PROFILE_ID = "tp-cycle4"


@dataclass
class Figures:
    mean_questions: float
    p90_questions: int
    agreement: float
    mastery_mae: float

    def as_dict(self) -> dict[str, float]:
        return {
            "mean_questions": round(self.mean_questions, 2),
            "p90_questions": self.p90_questions,
            "agreement": round(self.agreement, 4),
            "mastery_mae": round(self.mastery_mae, 4),
        }


def profile_of(pack: ContentPack) -> ProfileIndex:
    spec = pack.target_profile_by_id[PROFILE_ID]
    return ProfileIndex.build(pack.profile_skills(spec.tube_levels), locale=pack.locale)


def floor_questions(profile: ProfileIndex) -> int:
    """A noiseless learner needs ⌈log2(k + 1)⌉ answers per tube of k skills (bisection)."""
    return sum(math.ceil(math.log2(len(tube.skills) + 1)) for tube in profile.tubes)


POPULATIONS = {
    # the population of the targets: tube levels around an overall ability, slips and guesses
    "default": {},
    # stress tests, where the adaptive model's assumptions hold less or not at all
    "noiseless": {"slip": 0.0, "guess": 0.0},
    "wide": {"tube_spread": 2.5},
    "independent": {"independent": True},
    "guessy": {"slip": 0.05, "guess": 0.3},
}


def simulate(
    selector: Selector, profile: ProfileIndex, learners: int, seed: int, population: str = "default"
) -> Figures:
    questions, agreements, errors = [], [], []
    for n in range(learners):
        learner = random_learner(
            profile, random.Random(seed * 1_000_003 + n), **POPULATIONS[population]
        )
        outcome = run(
            selector,
            profile,
            learner,
            random.Random(seed * 7_919 + n),
            assessment_id=f"learner-{n}",
        )
        questions.append(outcome.questions)
        agreements.append(agreement(profile, learner, outcome.knowledge))
        errors.append(
            abs(measured_mastery(profile, outcome.knowledge) - true_mastery(profile, learner))
        )
    return Figures(
        statistics.mean(questions),
        int(percentile(questions, 0.9)),
        statistics.mean(agreements),
        statistics.mean(errors),
    )


def synthetic_profile(skill_count: int) -> ProfileIndex:
    """Tubes of 8 levels, one challenge per skill, every 9th timed."""
    skills = []
    for n in range(skill_count):
        tube, level = divmod(n, 8)
        tube_id, skill_id = f"@synthetique{tube}", f"@synthetique{tube}{level + 1}"
        challenge = Challenge(
            id=f"ch-synth-{n}",
            skill_id=skill_id,
            type=ChallengeType.QCU,
            instruction="—",
            explanation="—",
            proposals=("a", "b", "c"),
            solution_indexes=(1,),
            timer=30 if n % 9 == 0 else None,
        )
        skills.append(
            Skill(skill_id, tube_id, f"{tube % 16}", level + 1, "—", "", 1.0, (challenge,), ())
        )
    return ProfileIndex.build(skills)


class _Timed:
    """Wraps a selector and times every call, as the test happens (first pass, no replay)."""

    def __init__(self, selector: Selector) -> None:
        self.selector = selector
        self.name = selector.name
        self.choose: list[float] = []
        self.record: list[float] = []

    def next_challenge(self, situation: Situation):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return self.selector.next_challenge(situation)
        finally:
            self.choose.append((time.perf_counter() - start) * 1000)

    def record_answer(self, situation: Situation):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return self.selector.record_answer(situation)
        finally:
            self.record.append((time.perf_counter() - start) * 1000)

    def record_end(self, situation: Situation):  # type: ignore[no-untyped-def]
        return self.selector.record_end(situation)


def selection_times(
    selector: Selector, profile: ProfileIndex, tests: int, seed: int
) -> dict[str, float]:
    """Milliseconds per call over whole simulated tests, each test starting with empty caches
    (the worst case: a process that never saw this campaign)."""
    timed = _Timed(selector)
    for n in range(tests):
        clear_caches()
        learner = random_learner(profile, random.Random(seed * 104_729 + n))
        run(
            timed,
            profile,
            learner,
            random.Random(n),
            assessment_id=f"timing-{n}",
            max_questions=300,
        )  # type: ignore[arg-type]
    return {
        "p50": round(percentile(timed.choose, 0.5), 3),
        "p99": round(percentile(timed.choose, 0.99), 3),
        "record_p50": round(percentile(timed.record, 0.5), 3),
        "record_p99": round(percentile(timed.record, 0.99), 3),
        "calls": len(timed.choose),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--learners", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timing-tests", type=int, default=30)
    parser.add_argument("--pack", default=None, help="content pack folder (default: bundled)")
    parser.add_argument("--population", choices=sorted(POPULATIONS), default="default")
    args = parser.parse_args()

    pack = load_pack(args.pack) if args.pack else load_pack()
    profile = profile_of(pack)
    results = {
        name: simulate(selector, profile, args.learners, args.seed, args.population)
        for name, selector in SELECTORS.items()
    }
    big = synthetic_profile(1000)
    timing = {
        "skills_60": selection_times(SELECTORS["adaptive"], profile, args.timing_tests, args.seed),
        "skills_1000": selection_times(
            SELECTORS["adaptive"], big, max(3, args.timing_tests // 5), args.seed
        ),
    }
    baseline_timing = {
        "skills_60": selection_times(SELECTORS["baseline"], profile, args.timing_tests, args.seed),
        "skills_1000": selection_times(
            SELECTORS["baseline"], big, max(3, args.timing_tests // 5), args.seed
        ),
    }
    report = {
        "learners": args.learners,
        "population": args.population,
        "profile": {"id": PROFILE_ID, "skills": len(profile.skills), "tubes": len(profile.tubes)},
        # "improved" is the adaptive selector (campaigns store it as "adaptive").
        "algorithms": {
            "baseline": results["baseline"].as_dict(),
            "improved": {**results["adaptive"].as_dict(), "selector": "adaptive"},
        },
        "floor_questions": floor_questions(profile),
        "selection_ms": {k: {"p50": v["p50"], "p99": v["p99"]} for k, v in timing.items()},
        "baseline_selection_ms": {
            k: {"p50": v["p50"], "p99": v["p99"]} for k, v in baseline_timing.items()
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    base, improved = results["baseline"], results["adaptive"]
    print(
        f"{args.learners} simulated learners, profile {PROFILE_ID}: {len(profile.skills)} skills in {len(profile.tubes)} tubes"
    )
    print(f"{'algorithm':<10} {'mean q':>8} {'p90 q':>6} {'agreement':>10} {'mastery MAE':>12}")
    for name, figures in results.items():
        print(
            f"{name:<10} {figures.mean_questions:>8.2f} {figures.p90_questions:>6} {figures.agreement:>10.4f} {figures.mastery_mae:>12.4f}"
        )
    print(f"noiseless bisection floor: {report['floor_questions']} questions")
    print(
        f"adaptive / baseline questions: {improved.mean_questions / base.mean_questions:.2f}; adaptive / floor: {improved.mean_questions / report['floor_questions']:.2f}"
    )
    for label, figures in (("adaptive", timing), ("baseline", baseline_timing)):
        for size, t in figures.items():
            print(
                f"{label}, {size}: next challenge p50 {t['p50']:.3f} ms, p99 {t['p99']:.3f} ms; "
                f"recording an answer p50 {t['record_p50']:.3f} ms, p99 {t['record_p99']:.3f} ms "
                f"({t['calls']} calls, empty caches at each test)"
            )


if __name__ == "__main__":
    main()
