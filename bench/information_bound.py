"""How well can any selector do on noiseless learners with a given number of questions?

    python -m bench.information_bound [--json] [--samples N] [--grid G] [--seed S]
                                      [--questions Q ...]

A noiseless learner's answer is a function of what they master, so a test is a binary decision
tree over the profile's configuration (which skills are mastered) and its transcript a leaf of
that tree: the information a test gathers is at most its mean length in bits (a prefix code is
never shorter than the entropy). What is left, H(configuration) − mean questions, is spread over
the profile's skills; by subadditivity and Fano's inequality for one binary skill, the mean share
of skills classified wrongly p satisfies  skills × h(p) ≥ H − questions  (h the binary entropy),
whatever the selector. The benchmark estimates H for the `noiseless` population (configurations
drawn by `engine.simulation.population_learner`, their probability computed exactly by
integrating the overall ability on a grid) and prints the best agreement reachable at each
question count.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from collections.abc import Sequence

from bench.engine import profile_of
from engine.content import load_pack
from engine.selection import ProfileIndex, TubeIndex
from engine.simulation import ABILITY_RANGE, TUBE_SPREAD, population_learner

BASELINE_NOISELESS_QUESTIONS = 24.3  # the baseline's mean on `noiseless` (docs/engine.md)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _counts(tube: TubeIndex, ability: float) -> dict[int, float]:
    """P(the learner masters exactly c of the tube's target skills | overall ability)."""
    top = tube.skills[-1].level
    out: dict[int, float] = {}
    for level in range(top + 1):
        low = -math.inf if level == 0 else level - 0.5
        high = math.inf if level == top else level + 0.5
        p = _normal_cdf((high - ability) / TUBE_SPREAD) - _normal_cdf((low - ability) / TUBE_SPREAD)
        count = sum(1 for skill_level in tube.levels if skill_level <= level)
        out[count] = out.get(count, 0.0) + p
    return out


def entropy(profile: ProfileIndex, samples: int, grid: int, seed: int) -> tuple[float, float]:
    """H(configuration) in bits for `noiseless` learners, and its standard error."""
    low, high = ABILITY_RANGE
    abilities = [low + (high - low) * (i + 0.5) / grid for i in range(grid)]
    tables = [[_counts(tube, a) for a in abilities] for tube in profile.tubes]
    rng = random.Random(f"information-bound:{seed}")
    bits = []
    for _ in range(samples):
        learner = population_learner("noiseless", profile, rng)
        config = [
            sum(1 for level in tube.levels if learner.masters(tube.id, level))
            for tube in profile.tubes
        ]
        total = 0.0
        for g in range(grid):
            p = 1.0
            for table, count in zip(tables, config, strict=True):
                p *= table[g].get(count, 0.0)
                if p == 0.0:
                    break
            total += p
        bits.append(-math.log2(total / grid))
    return statistics.mean(bits), statistics.stdev(bits) / math.sqrt(len(bits))


def _h(p: float) -> float:
    return 0.0 if p <= 0.0 or p >= 1.0 else -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def best_agreement(h_bits: float, questions: float, skills: int) -> float:
    """The highest agreement any selector asking `questions` on average can reach."""
    missing = max(0.0, h_bits - questions) / skills
    low, high = 0.0, 0.5
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if _h(middle) < missing else (low, middle)
    return 1.0 - low


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20_000, help="learners drawn")
    parser.add_argument("--grid", type=int, default=300, help="ability grid points")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--questions",
        type=float,
        action="append",
        help="mean question counts to bound (default: 0.75 × and 1 × the baseline's)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    profile = profile_of(load_pack())
    h_bits, se = entropy(profile, args.samples, args.grid, args.seed)
    counts = args.questions or [
        round(0.75 * BASELINE_NOISELESS_QUESTIONS, 2),
        BASELINE_NOISELESS_QUESTIONS,
    ]
    skills = len(profile.skills)
    rows = [
        {"questions": q, "best_agreement": round(best_agreement(h_bits, q, skills), 4)}
        for q in counts
    ]
    report = {"entropy_bits": round(h_bits, 2), "entropy_se": round(se, 2), "bounds": rows}
    if args.json:
        print(json.dumps(report))
        return
    print(f"noiseless configurations over {skills} skills: H = {h_bits:.2f} ± {se:.2f} bits")
    for row in rows:
        print(f"  {row['questions']:>6} questions on average: agreement ≤ {row['best_agreement']}")


if __name__ == "__main__":
    main()
