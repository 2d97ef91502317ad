"""Students taking the whole test over HTTP, against Parcours served by Granian (or gunicorn) on
PostgreSQL.

    python -m bench.http_answers [--json] [--students 100] [--think-ms 0 | --rate 150]
                                 [--clients 2] [--server granian|gunicorn] [--workers 3]
                                 [--threads 1] [--worker-class sync|gthread]

Creates a throwaway PostgreSQL database next to BENCH_DATABASE_URL (default: the local `test`
database), seeds a 60-skill campaign and the students, starts the server on 127.0.0.1, and lets
every student sign in, start and answer until the end, all at once. Students are spread over
several load generator processes (asyncio, a minimal HTTP client) so that the client costs the
shared cores little and its own waits do not count as server latency. It prints answers per
second, the latency of "submit an answer and get the next page", the CPU time each side spent
per answer (server, database, load generator), the round trips to the database per answer
(counted in the workers' psycopg2 connections: bench/round_trips.py), the time the server's
garbage collections took per answer (timed in the workers, a part of their CPU), errors, and
whether the answers stored are exactly the answers sent. Only 127.0.0.1 is ever contacted.

Students answer back-to-back by default (the worst case); `--think-ms` gives them a mean time on
each question, `--rate` paces them all together to that many answers per second (each student
on a fixed schedule, catching up at once when a page came late).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import create_engine, select, text

from bench.common import SERVERS, percentile, school_with_admin, scratch_database
from bench.round_trips import totals_in
from engine.answers import expected_answer
from engine.content import Challenge, ChallengeType, ContentPack, load_pack

PASSWORD = secrets.token_urlsafe(12) + "-Aa1"  # this run only
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CHALLENGE = re.compile(r'name="challenge_id" value="([^"]+)"')


@dataclass
class Student:
    email: str
    cookies: dict[str, str] = field(default_factory=dict)
    sent: list[tuple[str, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Client:
    """A minimal HTTP/1.1 client on one keep-alive connection to 127.0.0.1, keeping cookies.
    Parsing stays tiny so that the load generator costs the shared cores as little as possible."""

    def __init__(self, port: int, student: Student) -> None:
        self.port = port
        self.student = student
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _send(self, head: bytes, body: bytes) -> tuple[int, dict[str, str], list[str], bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        reader = self.reader
        self.writer.write(head + body)
        status_line = await reader.readuntil(b"\r\n")
        if not status_line:
            raise ConnectionResetError("closed")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        cookies: list[str] = []
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookies.append(value)
            headers[name] = value
        payload = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, cookies, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, form: dict[str, object] | None = None
    ) -> tuple[int, str, str]:
        body = urlencode(form, doseq=True).encode() if form is not None else b""
        cookie = "; ".join(f"{k}={v}" for k, v in self.student.cookies.items())
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nCookie: {cookie}\r\n"
            + (
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n"
                if form is not None
                else ""
            )
            + "\r\n"
        ).encode()
        try:
            status, headers, cookies, payload = await self._send(head, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            # The server closed an idle keep-alive connection: send again on a new one (an
            # answer sent twice is stored once, which the final check would show otherwise).
            self.close()
            status, headers, cookies, payload = await self._send(head, body)
        for value in cookies:
            name, _, rest = value.partition("=")
            self.student.cookies[name] = rest.split(";", 1)[0]
        return status, headers.get("location", ""), payload.decode()

    async def get_following(self, path: str) -> tuple[int, str, str]:
        status, location, payload = await self.request("GET", path)
        while status in (301, 302, 303) and location:
            path = location
            status, location, payload = await self.request("GET", path)
        return status, path, payload


def cpu_seconds(kind: str, server_pid: int, client_pids: set[int]) -> float:
    """CPU time used so far by one side of the benchmark, read from /proc (0 where unavailable):
    `server` (the server's main process and workers), `database` (PostgreSQL's processes) or
    `clients`."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        pid, parent = int(entry.name), int(fields[1])
        if (
            (kind == "server" and server_pid in (pid, parent))
            or (kind == "database" and name.startswith("postgres"))
            or (kind == "clients" and pid in client_pids)
        ):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


SIDES = ("server", "database", "clients")


def seed(database_url: str, students: int) -> tuple[str, dict[str, object]]:
    """Migrate, import the bundled content, create the campaign and the students."""
    from campaigns.accounts import users
    from campaigns.orga import campaign_admin
    from campaigns.shared.content import import_pack
    from campaigns.shared.models import CampaignType, TargetProfile
    from config.db import Database
    from config.migrations import upgrade
    from config.settings import Settings
    from engine.content import BUNDLED_PACK

    database = Database(Settings(database_url=database_url))
    upgrade(database)
    with database.session() as session, session.begin():
        import_pack(session, BUNDLED_PACK)
        organization, admin = school_with_admin(
            session, name="Lycée du Banc d’essai", uai="0759999X", admin_email="prof@banc.example"
        )
        profile = session.scalars(
            select(TargetProfile).where(TargetProfile.content_key == "tp-cycle4")
        ).one()
        campaign = campaign_admin.create_campaign(
            session, organization=organization, creator=admin, name="Banc d’essai",
            type=CampaignType.ASSESSMENT, target_profile=profile, title="Banc d’essai",
        )  # fmt: skip
        code = campaign.code
        password_hash = users.hash_password(PASSWORD)  # one hash, shared: seeding stays quick
        for n in range(students):
            user = users.create_user(
                session, first_name="Élève", last_name=f"N{n}", email=f"eleve{n}@banc.example"
            )
            users.set_password(session, user, "x")
            user.authentication_methods[0].password_hash = password_hash  # type: ignore[index]
    database.dispose()
    return code, {"campaign": code}


def answer_form(challenge: Challenge, right: bool) -> tuple[dict[str, object], str]:
    """The form a student sends for `challenge`, right or wrong, and the value to be stored."""
    value = expected_answer(challenge)
    form: dict[str, object] = {"challenge_id": challenge.id, "action": "valider"}
    if challenge.type is ChallengeType.QCM:
        form["answer"] = value.split(",") if right else ["1"]
        value = value if right else "1"
    elif challenge.type is ChallengeType.QROCM:
        typed = {k: (v if right else "?") for k, v in json.loads(value).items()}
        form.update({f"field-{k}": v for k, v in typed.items()})
        value = json.dumps(typed, ensure_ascii=False)
    elif challenge.type is ChallengeType.QCU:
        value = value if right else str(len(challenge.proposals) - int(value) + 1)
        form["answer"] = value
    else:
        value = value if right else "je ne sais pas"
        form["answer"] = value
    return form, value


async def sign_in(client: Client, code: str, password: str) -> None:
    _, _, page = await client.request("GET", "/connexion")
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    form = {"login": client.student.email, "password": password, "csrf_token": token}
    status, _, _ = await client.request("POST", "/connexion", form)
    if status != 302:
        raise RuntimeError(f"sign-in answered {status}")
    _, _, page = await client.request("GET", f"/campagnes/{code}")
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    await client.request("POST", f"/campagnes/{code}/commencer", {"csrf_token": token})


async def take_test(
    client: Client,
    code: str,
    pack: ContentPack,
    rng: random.Random,
    think: float,
    interval: float,
) -> None:
    """Answer until the results (`interval`: the seconds between a student's answers when
    paced, 0 otherwise)."""
    student = client.student
    status, path, page = await client.get_following(f"/campagnes/{code}/evaluation")
    # Paced students spread over an interval (no draw otherwise: the answers stay those of
    # earlier runs).
    due = time.perf_counter() + (rng.uniform(0, interval) if interval else 0.0)
    while True:
        match = CHALLENGE.search(page)
        if match is None:
            if "/checkpoint" in path and "/evaluation" in page:
                status, path, page = await client.get_following(f"/campagnes/{code}/evaluation")
                continue
            return  # results: the test is over
        challenge = pack.challenge_by_id[match.group(1)]
        form, value = answer_form(challenge, right=rng.random() < 0.7)
        form["csrf_token"] = CSRF.search(page).group(1)  # type: ignore[union-attr]
        if think:
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think)  # reading and answering
        if interval:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            due += interval
        start = time.perf_counter()
        status, location, _ = await client.request("POST", f"/campagnes/{code}/evaluation", form)
        if status != 302:
            raise RuntimeError(f"answer answered {status}")
        status, path, page = await client.get_following(location)
        student.latencies.append((time.perf_counter() - start) * 1000)
        student.sent.append((challenge.id, value))
        if status != 200:
            raise RuntimeError(f"next page answered {status}")


def client_process(  # a process of the load generator: its share of the students
    port: int,
    code: str,
    password: str,
    emails: list[str],
    think: float,
    interval: float,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    pack = load_pack()
    students = [Student(email) for email in emails]

    async def run() -> float:
        clients = [Client(port, s) for s in students]

        async def guarded(student: Student, step: Coroutine[Any, Any, None]) -> None:
            try:
                await step
            except Exception as error:  # recorded, counted, reported
                student.errors.append(f"{type(error).__name__}: {error}")

        await asyncio.gather(*(guarded(c.student, sign_in(c, code, password)) for c in clients))
        ready.release()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        started = time.perf_counter()
        await asyncio.gather(
            *(
                guarded(
                    c.student,
                    take_test(c, code, pack, random.Random(c.student.email), think, interval),
                )
                for c in clients
                if not c.student.errors
            )
        )
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    results.put((elapsed, [(s.email, s.sent, s.latencies, s.errors) for s in students]))


def stored_answers(database_url: str) -> dict[str, list[tuple[str, str]]]:
    engine = create_engine(database_url)
    rows = engine.connect().execute(
        text(
            "SELECT u.email, a.challenge_id, a.value FROM answers a "
            "JOIN assessments s ON s.id = a.assessment_id JOIN users u ON u.id = s.user_id ORDER BY a.id"
        )
    )
    stored: dict[str, list[tuple[str, str]]] = {}
    for email, challenge_id, value in rows:
        stored.setdefault(email, []).append((challenge_id, value))
    engine.dispose()
    return stored


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--server", default="granian", choices=tuple(SERVERS), help="the WSGI server"
    )
    parser.add_argument(
        "--worker-class", default="sync", choices=("sync", "gthread"), help="gunicorn's"
    )
    parser.add_argument(
        "--clients", type=int, default=2, help="load generator processes sharing the students"
    )
    paced = parser.add_mutually_exclusive_group()
    paced.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean time a student spends on a question (0: answer back-to-back, the worst case)",
    )
    paced.add_argument(
        "--rate", type=float, default=0.0, help="answers per second of all students together"
    )
    args = parser.parse_args(argv)
    if args.server != "gunicorn" and args.worker_class != "sync":
        parser.error("--worker-class is gunicorn's")
    interval = args.students / args.rate if args.rate else 0.0

    with scratch_database() as database:
        code, _ = seed(database.url, args.students)
        if args.server == "gunicorn":
            options = ["--workers", str(args.workers), "--worker-class", args.worker_class,
                       "--threads", str(args.threads), "--keep-alive", "75"]  # fmt: skip
        else:  # one Python thread per worker runs requests, as gunicorn's sync worker
            options = ["--workers", str(args.workers), "--blocking-threads", str(args.threads),
                       "--runtime-threads", "1"]  # fmt: skip
        counted = Path(tempfile.mkdtemp(prefix="parcours-round-trips-"))
        with SERVERS[args.server](
            database.url,
            options,
            app="bench.round_trips:app",
            DATABASE_POOL_SIZE=str(args.threads),
            PARCOURS_ROUND_TRIPS_DIR=str(counted),
        ) as (server, port):
            emails = [f"eleve{n}@banc.example" for n in range(args.students)]
            context = multiprocessing.get_context("spawn")
            ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
            processes = [
                context.Process(
                    target=client_process,
                    args=(
                        port,
                        code,
                        PASSWORD,
                        emails[i :: args.clients],
                        args.think_ms / 1000,
                        interval,
                        ready,
                        go,
                        results,
                    ),
                )
                for i in range(args.clients)
            ]
            for process in processes:
                process.start()
            for _ in processes:  # every student signed in and started
                while not ready.acquire(timeout=1):
                    if not all(p.is_alive() for p in processes):
                        sys.exit("a load generator process stopped")
            pids = {p.pid for p in processes if p.pid is not None}
            cpu_before = {side: cpu_seconds(side, server.pid, pids) for side in SIDES}
            go.set()
            gathered = [results.get() for _ in processes]
            cpu_used = {
                side: cpu_seconds(side, server.pid, pids) - cpu_before[side] for side in SIDES
            }
            for process in processes:
                process.join()
            elapsed = max(e for e, _ in gathered)
            students = [
                Student(email, sent=sent, latencies=latencies, errors=errors)
                for _, part in gathered
                for email, sent, latencies, errors in part
            ]
            stored = stored_answers(database.url)
        round_trips = totals_in(counted)  # the server's processes counted them
        collected = totals_in(counted, "gc")
        counted.rmdir()

    latencies = [x for s in students for x in s.latencies]
    answers = sum(len(s.sent) for s in students)
    lost = sum(1 for s in students if stored.get(s.email, []) != s.sent)
    report = {
        "students": args.students,
        "server": args.server,
        "workers": args.workers,
        "threads": args.threads,
        "think_ms": args.think_ms,
        "rate": args.rate or None,
        "answers": answers,
        "seconds": round(elapsed, 2),
        "answers_per_second": round(answers / elapsed, 1) if elapsed else 0,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 1) if latencies else None,
            "p95": round(percentile(latencies, 0.95), 1) if latencies else None,
            "p99": round(percentile(latencies, 0.99), 1) if latencies else None,
        },
        "cpu_ms_per_answer": {
            side: round(used * 1000 / answers, 2) if answers else None
            for side, used in cpu_used.items()
        },
        # The pages of the answer path ("other": signing in and starting, before the clock).
        "round_trips_per_answer": round(
            sum(n for page, n in round_trips.items() if page != "other") / answers, 2
        )
        if answers
        else None,
        "round_trips_by_page": round_trips,
        # Timed in the server's processes: its garbage collections (a part of its CPU above).
        "gc_ms_per_answer": round(
            sum(us for page, us in collected.items() if page != "other") / 1000 / answers, 3
        )
        if answers
        else None,
        "errors": sum(len(s.errors) for s in students),
        "students_whose_stored_answers_differ": lost,
        "first_errors": [e for s in students for e in s.errors][:5],
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    print(
        f"{args.students} students "
        + (
            f"(paced to {args.rate:g} answers/s), "
            if args.rate
            else f"(think {args.think_ms:.0f} ms), "
        )
        + f"{args.server} {args.workers} workers × {args.threads} threads: "
        f"{answers} answers in {elapsed:.1f} s = {report['answers_per_second']} answers/s"
    )
    lat = report["latency_ms"]
    print(
        f"submit an answer and get the next page: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms"
    )  # type: ignore[index]
    cpu = report["cpu_ms_per_answer"]
    print(
        f"CPU per answer: server {cpu['server']} ms, database {cpu['database']} ms, "
        f"load generator {cpu['clients']} ms"
    )  # type: ignore[index]
    print(
        f"round trips to the database per answer: {report['round_trips_per_answer']} "
        f"({', '.join(f'{page} {n}' for page, n in round_trips.items())})"
    )
    print(f"garbage collection in the server per answer: {report['gc_ms_per_answer']} ms")
    print(
        f"errors: {report['errors']}; students whose stored answers differ from those sent: {lost}"
    )
    if report["first_errors"]:
        print("first errors:", *report["first_errors"], sep="\n  ")


if __name__ == "__main__":
    main()
