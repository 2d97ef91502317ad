"""The benchmarks keep running and keep their output shape (their figures are never asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the HTTP benchmark runs gunicorn on PostgreSQL",
)
def test_the_http_benchmark_loses_no_answer():
    result = subprocess.run(
        [sys.executable, "-m", "bench.http_answers", "--json", "--students", "3", "--clients", "1"],
        cwd=ROOT,
        env={**os.environ, "BENCH_DATABASE_URL": os.environ["TEST_DATABASE_URL"]},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["errors"] == 0, report["first_errors"]
    assert report["answers"] > 3 * 5  # every student went past a checkpoint
    assert report["students_whose_stored_answers_differ"] == 0
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert set(report["cpu_ms_per_answer"]) == {"server", "database", "clients"}


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the exports benchmark seeds PostgreSQL and runs gunicorn",
)
def test_the_exports_benchmark_streams_every_row():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.exports",
            "--json",
            "--participations",
            "40",
            "--analysis",
            "10",
        ],
        cwd=ROOT,
        env={**os.environ, "BENCH_DATABASE_URL": os.environ["TEST_DATABASE_URL"]},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["exports"]
    for run in report["exports"]:
        assert run["status"] == 200
        assert run["rows"] == 40
    assert [page["status"] for page in report["pages"]] == [200] * len(report["pages"])
