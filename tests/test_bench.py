"""The benchmarks keep running and keep their output shape (their figures are never asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(module, *flags, database=False):
    """The JSON report of `python -m bench.<module> --json FLAGS`, run as an operator would;
    `database`: on the suite's PostgreSQL database."""
    env = (
        {**os.environ, "BENCH_DATABASE_URL": os.environ["TEST_DATABASE_URL"]} if database else None
    )
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--json", *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout)


def _engine_report(*flags):
    return _run("engine", "--timing-tests", "3", *flags)


def test_the_engine_benchmark_runs_every_population_by_default():
    from engine.simulation import POPULATIONS

    report = _engine_report("--learners", "6")
    assert report["learners"] == 6
    assert list(report["populations"]) == list(POPULATIONS)
    for row in report["populations"].values():
        for selector in ("baseline", "adaptive"):
            assert {
                "mean_questions",
                "p90_questions",
                "max_questions",
                "agreement",
                "agreement_se",
                "mastery_mae",
                "coverage",
                "progress_error",
                "progress_before_end",
            } <= set(row[selector])
        assert set(row["checks"]) == {"agreement", "questions", "max_questions"}
        assert row["meets_targets"] == all(row["checks"].values())
    assert report["floor_questions"] > 0
    for size in ("skills_60", "skills_1000"):
        assert {"adaptive_p99", "baseline_p99", "p99_ratio"} <= set(report["selection_ms"][size])


def test_the_engine_benchmark_flags_change_what_it_measures():
    default = _engine_report("--learners", "8", "--population", "default")
    assert list(default["populations"]) == ["default"]
    figures = default["populations"]["default"]["baseline"]
    other = _engine_report("--learners", "8", "--population", "noiseless", "--population", "random")
    assert list(other["populations"]) == ["noiseless", "random"]
    assert other["populations"]["noiseless"]["baseline"] != figures
    seeded = _engine_report("--learners", "8", "--population", "default", "--seed", "2")
    assert seeded["seed"] == 2 and seeded["populations"]["default"]["baseline"] != figures
    assert default["selection_ms"]["skills_60"]["timed_tests"] == 3
    longer = _engine_report("--learners", "2", "--population", "random", "--timing-tests", "10")
    assert longer["selection_ms"]["skills_60"]["timed_tests"] == 10


def _bound_report(capsys, *flags):
    from bench.information_bound import main

    main(["--json", *flags])
    return json.loads(capsys.readouterr().out)


def test_the_information_bound_flags_change_what_it_measures(capsys):
    small = ("--samples", "60", "--grid", "40")
    report = _bound_report(capsys, *small)
    assert [row["questions"] for row in report["bounds"]] == [18.23, 24.3]
    assert report["entropy_bits"] > 0
    assert _bound_report(capsys, *small, "--seed", "2")["entropy_bits"] != report["entropy_bits"]
    assert _bound_report(capsys, "--samples", "90", "--grid", "40") != report
    assert _bound_report(capsys, "--samples", "60", "--grid", "12") != report
    asked = _bound_report(capsys, *small, "--questions", "5", "--questions", "40")["bounds"]
    assert [row["questions"] for row in asked] == [5, 40]
    assert asked[0]["best_agreement"] < 1 == asked[1]["best_agreement"]


def test_the_information_bound_inverts_the_binary_entropy():
    from bench.information_bound import _h, best_agreement

    assert best_agreement(19.0, 19.0, 60) == 1.0
    assert best_agreement(19.0, 25.0, 60) == 1.0
    p = 0.01
    assert best_agreement(10 + 60 * _h(p), 10, 60) == pytest.approx(1 - p, abs=1e-9)


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the HTTP benchmark runs Granian and gunicorn on PostgreSQL",
)
def test_the_http_benchmark_loses_no_answer_on_either_server():
    def report(*flags):
        return _run("http_answers", "--students", "3", "--clients", "1", *flags, database=True)

    granian, gunicorn = report(), report("--server", "gunicorn", "--rate", "20")
    for found in (granian, gunicorn):
        assert found["errors"] == 0, found["first_errors"]
        assert found["answers"] > 3 * 5  # every student went past a checkpoint
        assert found["students_whose_stored_answers_differ"] == 0
        assert set(found["latency_ms"]) == {"p50", "p95", "p99"}
        assert set(found["cpu_ms_per_answer"]) == {"server", "database", "clients"}
        # Round trips are counted in the server's processes, on the answer path's pages only.
        pages = found["round_trips_by_page"]
        assert pages["POST journey.question"] >= found["answers"] and pages["other"] > 0
        assert found["round_trips_per_answer"] > 1
        # Timed in the server's processes too: a part of its CPU, never none (a request makes
        # thousands of objects; a young collection runs every 2,000 more than were freed).
        assert 0 < found["gc_ms_per_answer"] < found["cpu_ms_per_answer"]["server"]
    assert (granian["server"], granian["rate"]) == ("granian", None)
    assert (gunicorn["server"], gunicorn["rate"]) == ("gunicorn", 20)
    assert gunicorn["answers_per_second"] <= 20 * 1.25  # paced: never faster than asked


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the exports benchmark seeds PostgreSQL and runs gunicorn",
)
def test_the_exports_benchmark_streams_every_row():
    report = _run("exports", "--participations", "40", "--analysis", "10", database=True)
    assert report["exports"]
    for run in report["exports"]:
        assert run["status"] == 200
        assert run["rows"] == 40
    assert [page["status"] for page in report["pages"]] == [200] * len(report["pages"])


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the LTI benchmark runs gunicorn and `parcours worker` on PostgreSQL",
)
def test_the_lti_benchmark_launches_everyone_and_delivers_every_grade():
    report = _run(
        "lti", "--launches", "5", "--class-size", "4", "--grades", "20", "--workers", "2",
        "--grade-workers", "1", database=True,
    )  # fmt: skip
    launch, klass, grades = report["launch"], report["class"], report["grades"]
    # Every flag changes what is measured.
    assert report["server_workers"] == 2
    assert launch["warmup_launches"] == 4  # two per gunicorn worker
    assert launch["errors"] == 0, launch["first_errors"]
    assert launch["launches"] == 5
    assert launch["answers"] == 5 * 5  # one checkpoint cycle each, the checkpoint passed
    assert launch["round_trips_per_launch"] == 4  # login, launch, rules, question
    assert klass["errors"] == 0, klass["first_errors"]
    assert klass["students"] == klass["launched"] == 4
    assert klass["students_with_one_learner_and_one_participation"] == 4
    assert klass["resource_links"] == 1
    assert report["learners_launched"] == 4 + 5 + 4
    assert report["launch_queued_grade_jobs"] == 4 + 5 + 4
    assert grades["grade_worker_processes"] == grades["workers_that_ran_jobs"] == 1
    assert grades["learners"] == grades["scores_received"] == 20
    assert grades["lost"] == grades["duplicates"] == grades["wrong_scores"] == 0
    assert grades["token_requests"] == 1  # one worker: nobody else misses the cache with it
    assert grades["jobs"] == {"DONE": 20}
    for figures in (
        launch["cpu_ms_per_launch"],
        launch["cpu_ms_per_answer"],
        launch["cpu_ms_per_early_answer"],
    ):
        assert set(figures) == {"server", "database", "clients"}
    assert set(klass["latency_ms"]) == {"p50", "p95", "max"}
    assert set(grades["cpu_ms_per_grade"]) == {"workers", "database", "platform"}
    # One row per figure, each with its target and verdict; none dropped.
    assert len(report["rows"]) == 28
    for row in report["rows"]:
        assert set(row) == {"figure", "value", "target", "verdict"}
        assert row["verdict"] in {"PASS", "MISS", "INFO"}
    assert [row["verdict"] == "INFO" for row in report["rows"]].count(False) == 12


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the SAML benchmark runs gunicorn on PostgreSQL",
)
def test_the_saml_benchmark_signs_everyone_in_once():
    report = _run(
        "saml", "--logins", "6", "--rush", "5", "--rush-seconds", "2", "--doubles", "2",
        "--workers", "2", database=True,
    )  # fmt: skip
    login, rush, check = report["login"], report["rush"], report["rush_check"]
    # Every flag changes what is measured.
    assert report["server_workers"] == 2 and report["warmup_logins"] == 6  # 3 per worker
    assert login["errors"] == 0, login["first_errors"]
    assert login["logins"] == 6 and login["answers"] == 6 * 3
    assert rush["errors"] == 0, rush["first_errors"]
    assert rush["students"] == 5 and rush["doubles"] == 2 and rush["sign_ins"] == 7
    assert rush["seconds"] >= 2 * 4 / 5  # arrivals spread over --rush-seconds
    assert check["accounts"] == check["learner_lines_linked"] == 5
    assert check["duplicates"] == 0 and check["accounts_made"] == 5
    for figures in (login["cpu_ms_per_acs"], login["cpu_ms_per_answer"]):
        assert set(figures) == {"server", "database", "clients"}
    assert set(rush["acs_ms"]) == set(rush["match_ms"]) == {"p50", "p95", "max"}
    # One row per figure, each with its target and verdict; none dropped.
    assert len(report["rows"]) == 22
    for row in report["rows"]:
        assert row["verdict"] in ("PASS", "MISS", "INFO")


class _ScriptedServer:
    """Answers bench.lti's requests as the journey does: one question, then the checkpoint
    of a test that is over, whose only way on is the results page."""

    def __init__(self, question_page: str) -> None:
        self.question_page = question_page
        self.paths: list[str] = []
        self.student = None

    async def request(self, method, path, form=None):
        self.paths.append(f"{method} {path}")
        if method == "POST":
            return 302, "/campagnes/CODE/checkpoint?final=1", ""
        if path.startswith("/campagnes/CODE/checkpoint"):
            return 200, None, '<a href="/campagnes/CODE/resultats">Voir mes résultats</a>'
        if path == "/campagnes/CODE/resultats":
            return 200, None, "<h1>Vos résultats</h1>"
        return 404, None, ""


def test_the_lti_benchmark_follows_the_last_checkpoint_to_the_results():
    import asyncio

    from bench.http_answers import Student
    from bench.lti import answer
    from engine.content import load_pack

    pack = load_pack()
    challenge = next(iter(pack.challenge_by_id.values()))
    page = (
        f'<input name="csrf_token" value="token"><input name="challenge_id" value="{challenge.id}">'
    )
    client = _ScriptedServer(page)
    client.student = Student("learner@example.org")
    last = asyncio.run(answer(client, "CODE", page, pack, 1))
    assert "Vos résultats" in last
    assert client.paths[-1] == "GET /campagnes/CODE/resultats"
    assert len(client.student.sent) == 1


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the instruction-count benchmark seeds PostgreSQL",
)
def test_the_instruction_count_benchmark_counts_the_measured_answers_only():
    import shutil

    def report(*flags):
        return _run("answer_instructions", *flags, database=True)

    timed = report("--cpu-time", "--students", "2")
    assert timed["students"] == 2 and timed["answers"] > 2 * 5  # whole tests, checkpoints passed
    assert timed["cpu_ms_per_answer"] > 0 and "instructions_per_answer" not in timed
    one = report("--cpu-time", "--students", "1")
    assert 5 < one["answers"] < timed["answers"]
    if shutil.which("valgrind"):  # CI installs it (make install-browser)
        counted = report("--students", "1")
        assert counted["answers"] == one["answers"]  # the same students give the same answers
        # Requests only: Python's start-up and imports alone are tens of millions.
        assert 1_000_000 < counted["instructions_per_answer"] < 100_000_000
        assert "cpu_ms_per_answer" not in counted


def test_the_instruction_count_benchmark_refuses_a_directory_without_parcours(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.answer_instructions", "--code-from", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "holds no Parcours checkout" in result.stderr
