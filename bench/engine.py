"""Simulated learners take the same tests under each selector; prints questions, accuracy, speed.

    python -m bench.engine [--json] [--learners N] [--seed S] [--population NAME ...]

Every population of the family (engine.simulation.POPULATIONS, described in docs/engine.md) is
run by default; `--population` picks some. Every algorithm meets the same learners with the
same answer noise (each learner comes from a random generator seeded by the seed and the
learner's number). The target profile is the bundled pack's "cycle 4" profile (60 skills).
Selection time is measured per call on that profile and on a synthetic 1,000-skill profile, one
core, beside the baseline's in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import statistics
import time
from dataclasses import dataclass, field

from bench.common import percentile
from engine.content import Challenge, ChallengeType, ContentPack, Skill, load_pack
from engine.selection import SELECTORS, ProfileIndex, Selector, Situation, clear_caches
from engine.simulation import (
    POPULATIONS,
    agreement,
    challenge_noise,
    coverage,
    measured_mastery,
    population_learner,
    random_learner,
    run,
    true_mastery,
)

PROFILE_ID = "tp-cycle4"
QUESTIONS_RATIO_TARGET = 0.75


@dataclass
class Figures:
    questions: list[int]
    agreements: list[float]
    errors: list[float]
    coverages: list[float]
    progress_gaps: list[float] = field(default_factory=list)  # |estimate − share done|
    last_progress: list[float] = field(default_factory=list)  # shown before the end

    @property
    def mean_questions(self) -> float:
        return statistics.mean(self.questions)

    @property
    def agreement(self) -> float:
        return statistics.mean(self.agreements)

    def as_dict(self) -> dict[str, float]:
        return {
            "mean_questions": round(self.mean_questions, 2),
            "p90_questions": int(percentile(self.questions, 0.9)),
            "max_questions": max(self.questions),
            "agreement": round(self.agreement, 4),
            "agreement_se": round(_se(self.agreements), 4),
            "mastery_mae": round(statistics.mean(self.errors), 4),
            "coverage": round(statistics.mean(self.coverages), 4),
            "progress_error": round(statistics.mean(self.progress_gaps or [0.0]), 3),
            "progress_before_end": round(statistics.mean(self.last_progress or [0.0]), 3),
        }


def _se(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def profile_of(pack: ContentPack) -> ProfileIndex:
    spec = pack.target_profile_by_id[PROFILE_ID]
    return ProfileIndex.build(pack.profile_skills(spec.tube_levels), locale=pack.locale)


def floor_questions(profile: ProfileIndex) -> int:
    """A noiseless learner needs ⌈log2(k + 1)⌉ answers per tube of k skills (bisection)."""
    return sum(math.ceil(math.log2(len(tube.skills) + 1)) for tube in profile.tubes)


def simulate(
    selector: Selector, profile: ProfileIndex, learners: int, seed: int, population: str
) -> Figures:
    noise = challenge_noise(profile, seed)
    figures = Figures([], [], [], [])
    for n in range(learners):
        learner = population_learner(
            population, profile, random.Random(seed * 1_000_003 + n), noise
        )
        outcome = run(
            selector,
            profile,
            learner,
            random.Random(seed * 7_919 + n),
            assessment_id=f"learner-{n}",
            progress=True,
        )
        figures.questions.append(outcome.questions)
        shown = 0.0
        for answered, estimate in enumerate(outcome.progress, start=1):
            figures.progress_gaps.append(abs(estimate - answered / outcome.questions))
            shown = max(shown, estimate)  # what the student's bar shows
        figures.last_progress.append(shown)
        figures.agreements.append(agreement(profile, learner, outcome.knowledge))
        figures.errors.append(
            abs(measured_mastery(profile, outcome.knowledge) - true_mastery(profile, learner))
        )
        figures.coverages.append(coverage(profile, outcome.steps))
    return figures


def compare(base: Figures, adaptive: Figures) -> dict[str, object]:
    """The targets of one population: agreement at least the baseline's within one standard
    error of the paired difference, at most 0.75 × its mean questions, a maximum no higher."""
    differences = [a - b for a, b in zip(adaptive.agreements, base.agreements, strict=True)]
    difference, se = statistics.mean(differences), _se(differences)
    ratio = adaptive.mean_questions / base.mean_questions
    checks = {
        "agreement": difference >= -se,
        "questions": ratio <= QUESTIONS_RATIO_TARGET,
        "max_questions": max(adaptive.questions) <= max(base.questions),
    }
    return {
        "agreement_difference": round(difference, 4),
        "agreement_difference_se": round(se, 4),
        "questions_ratio": round(ratio, 3),
        "checks": checks,
        "meets_targets": all(checks.values()),
    }


def _simulate_job(job: tuple[str | None, str, int, int, str]) -> tuple[str, str, Figures]:
    pack_path, selector, learners, seed, population = job
    profile = profile_of(load_pack(pack_path) if pack_path else load_pack())
    return population, selector, simulate(SELECTORS[selector], profile, learners, seed, population)


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
        self.estimate: list[float] = []

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

    def progress(self, situation: Situation) -> float:
        start = time.perf_counter()
        try:
            return self.selector.progress(situation)
        finally:
            self.estimate.append((time.perf_counter() - start) * 1000)


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
            progress=True,  # each answer: record it, estimate the progress, choose the next
        )  # type: ignore[arg-type]
    return {
        "p50": round(percentile(timed.choose, 0.5), 3),
        "p99": round(percentile(timed.choose, 0.99), 3),
        "record_p50": round(percentile(timed.record, 0.5), 3),
        "record_p99": round(percentile(timed.record, 0.99), 3),
        "progress_p99": round(percentile(timed.estimate, 0.99), 3),
        "calls": len(timed.choose),
        "tests": tests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--learners", type=int, default=2000, help="per population")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timing-tests", type=int, default=30)
    parser.add_argument("--pack", default=None, help="content pack folder (default: bundled)")
    parser.add_argument(
        "--population",
        action="append",
        choices=POPULATIONS,
        help="a population to run (repeatable; default: all of them)",
    )
    args = parser.parse_args()

    populations = args.population or list(POPULATIONS)
    pack = load_pack(args.pack) if args.pack else load_pack()
    profile = profile_of(pack)
    jobs = [
        (args.pack, name, args.learners, args.seed, population)
        for population in populations
        for name in SELECTORS
    ]
    with multiprocessing.Pool(os.cpu_count() or 1) as pool:  # figures do not depend on it
        done = pool.map(_simulate_job, jobs, chunksize=1)
    results: dict[str, dict[str, Figures]] = {}
    for population, name, figures in done:
        results.setdefault(population, {})[name] = figures

    big = synthetic_profile(1000)
    timing = {
        name: {
            "skills_60": selection_times(SELECTORS[name], profile, args.timing_tests, args.seed),
            "skills_1000": selection_times(
                SELECTORS[name], big, max(3, args.timing_tests // 5), args.seed
            ),
        }
        for name in ("adaptive", "baseline")
    }
    report = {
        "learners": args.learners,
        "seed": args.seed,
        "profile": {"id": PROFILE_ID, "skills": len(profile.skills), "tubes": len(profile.tubes)},
        "floor_questions": floor_questions(profile),
        "populations": {
            population: {
                "baseline": by_name["baseline"].as_dict(),
                "adaptive": by_name["adaptive"].as_dict(),
                **compare(by_name["baseline"], by_name["adaptive"]),
            }
            for population, by_name in results.items()
        },
        "selection_ms": {
            size: {
                "adaptive_p50": timing["adaptive"][size]["p50"],
                "adaptive_p99": timing["adaptive"][size]["p99"],
                "baseline_p50": timing["baseline"][size]["p50"],
                "baseline_p99": timing["baseline"][size]["p99"],
                "p99_ratio": round(
                    timing["adaptive"][size]["p99"] / max(timing["baseline"][size]["p99"], 1e-6),
                    2,
                ),
                "adaptive_record_p99": timing["adaptive"][size]["record_p99"],
                "adaptive_progress_p99": timing["adaptive"][size]["progress_p99"],
                "timed_tests": timing["adaptive"][size]["tests"],
            }
            for size in ("skills_60", "skills_1000")
        },
    }
    report["meets_targets"] = all(p["meets_targets"] for p in report["populations"].values())
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{args.learners} simulated learners per population, seed {args.seed}, profile "
        f"{PROFILE_ID}: {len(profile.skills)} skills in {len(profile.tubes)} tubes"
    )
    print(
        f"{'population':<18} {'selector':<9} {'mean q':>7} {'p90':>4} {'max':>4} "
        f"{'agreement':>14} {'MAE':>7} {'coverage':>8} {'progress±':>9} {'bar@end':>7}"
    )
    for population, row in report["populations"].items():
        for name in ("baseline", "adaptive"):
            f = row[name]
            print(
                f"{population:<18} {name:<9} {f['mean_questions']:>7.2f} {f['p90_questions']:>4} "
                f"{f['max_questions']:>4} {f['agreement']:>7.4f} ±{f['agreement_se']:.4f} "
                f"{f['mastery_mae']:>7.4f} {f['coverage']:>8.3f} {f['progress_error']:>9.3f} "
                f"{f['progress_before_end']:>7.2f}"
            )
        missed = [name for name, ok in row["checks"].items() if not ok]
        print(
            f"{'':<18} adaptive − baseline agreement {row['agreement_difference']:+.4f} "
            f"(SE {row['agreement_difference_se']:.4f}), questions × {row['questions_ratio']:.2f}: "
            + ("meets the targets" if not missed else "MISSES " + ", ".join(missed))
        )
    for size, t in report["selection_ms"].items():
        print(
            f"next challenge, {size}: adaptive p50 {t['adaptive_p50']:.3f} ms, p99 "
            f"{t['adaptive_p99']:.3f} ms; baseline p50 {t['baseline_p50']:.3f} ms, p99 "
            f"{t['baseline_p99']:.3f} ms; p99 ratio {t['p99_ratio']:.2f} (cold caches per test); "
            f"adaptive recording an answer p99 {t['adaptive_record_p99']:.3f} ms, progress "
            f"p99 {t['adaptive_progress_p99']:.3f} ms"
        )


if __name__ == "__main__":
    main()
