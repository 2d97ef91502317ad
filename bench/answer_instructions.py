"""The server's work per answer counted in machine instructions, a figure this shared machine's
noise does not move, for this code or another checkout's, side by side.

    python -m bench.answer_instructions [--json] [--students 8] [--code-from DIR] [--cpu-time]

The students of `bench.http_answers` take the whole test again, in one process and without a
network: their requests go straight to the WSGI application (`wsgi:app`, built as in
production), one student after the other answering in turn, on a throwaway PostgreSQL database
next to BENCH_DATABASE_URL. Signing in and starting happen first, in another process (each
sign-in is a deliberately slow password hash); then one more student takes a whole test
unmeasured, so that templates are compiled and statements prepared as in a worker that has
served for a while; then every request of the others' tests is measured, as in the HTTP
benchmark (the first question page, each answer, the page after it, checkpoints, the results).

Measured by Valgrind's callgrind, which counts the instructions run inside those requests only
(`--toggle-collect` on the C function behind `operator.call`, through which each measured
request goes and which nothing else calls): the same code and data give the same count whatever
else the machine does, within about a percent (random tokens, ids, timestamps). Instructions
are not time, and this leaves out the HTTP server and PostgreSQL's side: a ratio between two
versions of the answer path, not a capacity. Nor do all instructions cost alike: the adaptive
engine's arithmetic runs several per cycle, the framework's branchy code fewer (the engine is
about 40 % of the instructions of an answer and a quarter of its CPU time), so a change that
only moves work between them is judged on CPU time too. `--cpu-time` measures the same requests' CPU time
instead, without Valgrind (noisy; quick). `--code-from DIR` measures the code of another
checkout (its own migrations, seeding and application; this module drives it over HTTP only).
"""

from __future__ import annotations

import argparse
import io
import json
import operator
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CHALLENGE = re.compile(r'name="challenge_id" value="([^"]+)"')
MEASURED = "_operator_call"  # the C function of operator.call, which no dependency calls
TOGGLE = ["--tool=callgrind", "--collect-atstart=no", f"--toggle-collect={MEASURED}",
          "--cache-sim=no", "--branch-sim=no"]  # fmt: skip


# -- inside the measured checkout's process ------------------------------------------------------


class Browser:
    """One student's cookies, and WSGI calls to the application: `measured` ones go through
    operator.call (what callgrind counts), the others directly."""

    def __init__(self, app: Any, cookies: dict[str, str] | None = None) -> None:
        self.app = app
        self.cookies = dict(cookies or {})
        self.cpu = 0.0  # seconds of the measured requests (--cpu-time)
        self.answers = 0

    def _serve(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[Any] = []
        body = self.app(
            environ, lambda status, headers, exc_info=None: started.extend((status, headers))
        )
        try:
            payload = b"".join(body)
        finally:
            getattr(body, "close", lambda: None)()
        return started[0], started[1], payload

    def _measured(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        return self._serve(environ)  # a frame of its own: profilers tell these requests apart

    def request(
        self, method: str, path: str, form: dict[str, object] | None = None, measured: bool = False
    ) -> tuple[int, str, str]:
        data = urlencode(form, doseq=True).encode() if form is not None else b""
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:5000",
            "HTTP_COOKIE": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }  # fmt: skip
        if form is not None:
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
            environ["CONTENT_LENGTH"] = str(len(data))
        if measured:
            before = time.process_time()
            status, headers, payload = operator.call(self._measured, environ)
            self.cpu += time.process_time() - before
        else:
            status, headers, payload = self._serve(environ)
        location = ""
        for name, value in headers:
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
            elif name.lower() == "location":
                location = value
        return int(status.split(" ", 1)[0]), location, payload.decode()

    def following(self, path: str, measured: bool = False) -> tuple[int, str, str]:
        status, location, page = self.request("GET", path, measured=measured)
        while status in (301, 302, 303) and location:
            path = location
            status, location, page = self.request("GET", path, measured=measured)
        return status, path, page


def _tests(browsers: list[Browser], code: str, measured: bool) -> None:
    """The students' tests, taken in turn, an answer each at a time, to the end."""
    import random

    from engine.content import load_pack

    pack = load_pack()
    steps: list[Any] = []
    for n, browser in enumerate(browsers):
        steps.append(_test(browser, code, pack, random.Random(n), measured))
    while steps:
        for step in list(steps):
            try:
                next(step)
            except StopIteration:
                steps.remove(step)


def _test(browser: Browser, code: str, pack: Any, rng: Any, measured: bool) -> Iterable[None]:
    from bench.http_answers import answer_form

    status, path, page = browser.following(f"/campagnes/{code}/evaluation", measured)
    while True:
        match = CHALLENGE.search(page)
        if match is None:
            if "/checkpoint" in path and "/evaluation" in page:
                status, path, page = browser.following(f"/campagnes/{code}/evaluation", measured)
                continue
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
            return  # results: the test is over
        challenge = pack.challenge_by_id[match.group(1)]
        form, _ = answer_form(challenge, right=rng.random() < 0.7)
        form["csrf_token"] = CSRF.search(page).group(1)  # type: ignore[union-attr]
        status, location, _ = browser.request(
            "POST", f"/campagnes/{code}/evaluation", form, measured
        )
        if status != 302:
            raise RuntimeError(f"an answer answered {status}")
        browser.answers += 1
        status, path, page = browser.following(location, measured)
        yield


def prepare(database_url: str, students: int) -> dict[str, Any]:
    """Seed the database, then sign every student in and start their test (not measured)."""
    from bench.http_answers import PASSWORD, seed

    code, _ = seed(database_url, students + 1)
    from wsgi import app

    signed_in = []
    for n in range(students + 1):
        browser = Browser(app)
        _, _, page = browser.request("GET", "/connexion")
        form = {"login": f"eleve{n}@banc.example", "password": PASSWORD,
                "csrf_token": CSRF.search(page).group(1)}  # type: ignore[union-attr]  # fmt: skip
        status, _, _ = browser.request("POST", "/connexion", form)
        if status != 302:
            raise RuntimeError(f"signing in answered {status}")
        _, _, page = browser.request("GET", f"/campagnes/{code}")
        token = CSRF.search(page).group(1)  # type: ignore[union-attr]
        browser.request("POST", f"/campagnes/{code}/commencer", {"csrf_token": token})
        signed_in.append(browser.cookies)
    return {"code": code, "cookies": signed_in}


def measure(prepared: dict[str, Any]) -> dict[str, Any]:
    """The first student's whole test unmeasured, then the others' measured."""
    from wsgi import app

    code = prepared["code"]
    warm, *others = (Browser(app, cookies) for cookies in prepared["cookies"])
    _tests([warm], code, measured=False)
    _tests(others, code, measured=True)
    answers = sum(b.answers for b in others)
    return {"answers": answers, "cpu_seconds": sum(b.cpu for b in others)}


def _inside(argv: list[str]) -> None:
    """Run in the measured checkout: `prepare URL N` or `measure FILE`, printing JSON."""
    if argv[0] == "prepare":
        print(json.dumps(prepare(argv[1], int(argv[2]))))
    else:
        print(json.dumps(measure(json.loads(Path(argv[1]).read_text()))))


# -- the driver ----------------------------------------------------------------------------------

# Run in the checkout's directory with this file loaded by path: the checkout's own packages
# (`wsgi`, `config`, `bench.http_answers`…) are imported, whichever code this module is from.
_RUN_THIS = "import runpy, sys; runpy.run_path(sys.argv.pop(1), run_name='__inside__')['_inside'](sys.argv[1:])"


def _run(
    code_dir: Path, args: list[str], environment: dict[str, str], wrap: list[str] | None = None
) -> dict[str, Any]:
    command = [*(wrap or []), sys.executable, "-c", _RUN_THIS, str(Path(__file__).resolve()), *args]
    done = subprocess.run(command, cwd=code_dir, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the measured process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def callgrind_total(path: Path) -> int:
    """The instructions counted in a callgrind output file."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"no total in {path}")


def run(
    students: int, code_dir: Path, cpu_time: bool, report: Callable[[str], None]
) -> dict[str, Any]:
    from bench.common import scratch_database

    if not (code_dir / "wsgi.py").is_file():
        sys.exit(f"--code-from: {code_dir} holds no Parcours checkout (no wsgi.py)")
    if not cpu_time and shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (use --cpu-time, or install Debian's valgrind)")
    with scratch_database() as database, tempfile.TemporaryDirectory() as scratch:
        environment = dict(
            os.environ,
            DATABASE_URL=database.url,
            PARCOURS_ENV="development",
            PUBLIC_URL="http://127.0.0.1:5000",
            SECRET_KEY=secrets.token_urlsafe(48),
            LOG_LEVEL="WARNING",
            PYTHONHASHSEED="0",
        )
        environment.pop("PYTHONPATH", None)
        report(f"seeding, signing {students + 1} students in ({code_dir})")
        prepared = _run(code_dir, ["prepare", database.url, str(students)], environment)
        state = Path(scratch) / "prepared.json"
        state.write_text(json.dumps(prepared))
        output = Path(scratch) / "callgrind.out"
        wrap = None if cpu_time else ["valgrind", *TOGGLE, f"--callgrind-out-file={output}"]
        report("measuring" + ("" if cpu_time else " under valgrind (minutes)"))
        measured = _run(code_dir, ["measure", str(state)], environment, wrap)
        answers = measured["answers"]
        result: dict[str, Any] = {"students": students, "answers": answers}
        if cpu_time:
            result["cpu_ms_per_answer"] = round(measured["cpu_seconds"] * 1000 / answers, 3)
        else:
            result["instructions_per_answer"] = round(callgrind_total(output) / answers)
        return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--students", type=int, default=8, help="measured (one more warms up)")
    parser.add_argument(
        "--code-from", type=Path, default=ROOT, help="the checkout to measure (default: this one)"
    )
    parser.add_argument(
        "--cpu-time", action="store_true", help="CPU time instead of instructions (no valgrind)"
    )
    args = parser.parse_args(argv)
    quiet = args.json
    result = run(args.students, args.code_from.resolve(), args.cpu_time,
                 (lambda _: None) if quiet else (lambda line: print(line, file=sys.stderr)))  # fmt: skip
    result["code_from"] = str(args.code_from)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    figure = (
        f"{result['cpu_ms_per_answer']} ms of CPU"
        if args.cpu_time
        else f"{result['instructions_per_answer']:,} instructions"
    )
    print(f"{result['answers']} answers of {args.students} students: {figure} per answer")


if __name__ == "__main__":
    main()
