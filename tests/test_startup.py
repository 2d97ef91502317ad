"""Starting Parcours as production does: gunicorn workers loading `wsgi:app`."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.common import free_port

ROOT = Path(__file__).resolve().parent.parent
STRONG_SECRET = "z" * 48


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update(
        PARCOURS_ENV="production",
        DATABASE_URL=database_url,
        SECRET_KEY=STRONG_SECRET,
        PUBLIC_URL="https://parcours.example.org",
        PARCOURS_ALLOW_SQLITE="1",
        TRUSTED_PROXIES="1",
    )
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY: production refuses the default development key"),
        ({"DATABASE_URL": "postgresql+psycopg2://u@127.0.0.1:1/x"}, "DATABASE_URL: cannot reach"),
        ({"DATABASE_URL": "::nonsense::"}, "DATABASE_URL: not a database URL"),
    ],
)
def test_wsgi_refuses_bad_configuration_in_one_line(settings, extra, expected):
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env=production_env(settings.database_url, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4  # gunicorn's "application cannot load": the master stops
    assert result.stderr.strip().startswith(f"parcours: error: {expected}")
    assert result.stderr.strip().count("\n") == 0


def test_a_worker_freezes_what_it_built_at_start_up_for_the_garbage_collector(settings, database):
    probe = (
        "import gc, json; default = gc.get_threshold(); import wsgi; print(json.dumps("
        "[gc.get_freeze_count(), len(gc.get_objects()), gc.get_threshold(), default]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=production_env(settings.database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    frozen, still_walked, threshold, default = json.loads(result.stdout.strip().splitlines()[-1])
    assert frozen > 50_000  # the modules, the app, its routes and mapped classes
    assert still_walked < frozen / 10  # only what was made after start-up
    assert threshold[0] == 2000
    assert threshold[1:] == default[1:]  # the older generations keep Python's defaults


def test_gunicorn_workers_serve_healthz_on_the_database(settings, database):
    port = free_port()
    server = subprocess.Popen(
        [
            *[sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}"],
            *["--graceful-timeout", "2", "--no-control-socket", "wsgi:app"],
        ],
        cwd=ROOT,
        env=production_env(settings.database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.2)
        assert body is not None, "gunicorn did not answer"
        assert '"database":"ok"' in body
        assert '"schema":"up to date"' in body
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_gunicorn_stops_instead_of_restarting_workers_on_bad_configuration(settings):
    port = free_port()
    env = production_env("postgresql+psycopg2://nobody@127.0.0.1:1/nothing")
    server = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a restart loop would run until this kills it and fails the test
    )
    assert server.returncode != 0, server.stderr
    assert "parcours: error: DATABASE_URL: cannot reach" in server.stderr, server.stderr
    # When both workers fail at once, gunicorn's arbiter may print a traceback of its own (it
    # reaps the second worker while halting for the first); none may come from Parcours.
    frames = re.findall(r'File "([^"]+)"', server.stderr)
    ours = [f for f in frames if "site-packages" not in f and not f.startswith("<frozen")]
    assert not ours, server.stderr
