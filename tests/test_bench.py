"""The benchmarks keep running and keep their output shape (their figures are never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_engine_benchmark_prints_its_json_report():
    result = subprocess.run(
        [sys.executable, "-m", "bench.engine", "--json", "--learners", "20", "--timing-tests", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["learners"] == 20
    assert set(report["algorithms"]) == {"baseline", "improved"}
    for figures in report["algorithms"].values():
        assert {"mean_questions", "p90_questions", "agreement", "mastery_mae"} <= set(figures)
    assert report["floor_questions"] > 0
    assert set(report["selection_ms"]) == {"skills_60", "skills_1000"}
