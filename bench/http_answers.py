"""Students taking the whole test over HTTP, against gunicorn on PostgreSQL.

    python -m bench.http_answers [--json] [--students 100] [--workers 4] [--threads 4]

Creates a throwaway PostgreSQL database next to BENCH_DATABASE_URL (default: the local `test`
database), seeds a 60-skill campaign and the students, starts gunicorn on 127.0.0.1, and lets
every student sign in, start and answer until the end, all at once. It prints answers per
second, the latency of "submit an answer and get the next page", errors, and whether the answers
stored are exactly the answers sent. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
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
    """A tiny cookie-keeping HTTP client on one keep-alive connection to 127.0.0.1."""

    def __init__(self, port: int, student: Student) -> None:
        self.port = port
        self.student = student
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(
        self, method: str, path: str, form: dict[str, object] | None = None
    ) -> tuple[int, str, str]:
        body = urlencode(form, doseq=True) if form is not None else None
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.student.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                payload = response.read().decode()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.student.cookies[name] = rest.split(";", 1)[0]
        return response.status, response.getheader("Location") or "", payload

    def get_following(self, path: str) -> tuple[int, str, str]:
        status, location, payload = self.request("GET", path)
        while status in (301, 302, 303) and location:
            path = location
            status, location, payload = self.request("GET", path)
        return status, path, payload


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seed(database_url: str, students: int) -> tuple[str, dict[str, object]]:
    """Migrate, import the bundled content, create the campaign and the students."""
    from campaigns import services
    from campaigns.content import import_pack
    from campaigns.models import CampaignType, OrganizationType, TargetProfile
    from config.db import Database
    from config.migrations import upgrade
    from config.settings import Settings
    from engine.content import BUNDLED_PACK

    database = Database(Settings(database_url=database_url))
    upgrade(database)
    with database.session() as session, session.begin():
        import_pack(session, BUNDLED_PACK)
        created = services.create_organization(
            session, name="Lycée du Banc d’essai", type=OrganizationType.SCO, uai="0759999X",
            admin_email="prof@banc.example",
        )  # fmt: skip
        profile = session.scalars(
            select(TargetProfile).where(TargetProfile.content_key == "tp-cycle4")
        ).one()
        campaign = services.create_campaign(
            session, organization=created.organization, creator=created.admin, name="Banc d’essai",
            type=CampaignType.ASSESSMENT, target_profile=profile, title="Banc d’essai",
        )  # fmt: skip
        code = campaign.code
        password_hash = services.hash_password(PASSWORD)  # one hash, shared: seeding stays quick
        for n in range(students):
            user = services.create_user(
                session, first_name="Élève", last_name=f"N{n}", email=f"eleve{n}@banc.example"
            )
            services.set_password(session, user, "x")
            user.authentication_methods[0].password_hash = password_hash  # type: ignore[index]
    database.dispose()
    return code, {"campaign": code}


def take_test(  # type: ignore[no-untyped-def]
    port: int,
    code: str,
    student: Student,
    pack,
    rng: random.Random,
    barrier: threading.Barrier,
    think: float = 0.0,
) -> None:
    from engine.answers import expected_answer
    from engine.content import ChallengeType

    client = Client(port, student)
    try:
        _, _, page = client.request("GET", "/connexion")
        token = CSRF.search(page).group(1)  # type: ignore[union-attr]
        status, _, _ = client.request(
            "POST",
            "/connexion",
            {"login": student.email, "password": PASSWORD, "csrf_token": token},
        )
        if status != 302:
            raise RuntimeError(f"sign-in answered {status}")
        _, _, page = client.request("GET", f"/campagnes/{code}")
        token = CSRF.search(page).group(1)  # type: ignore[union-attr]
        client.request("POST", f"/campagnes/{code}/commencer", {"csrf_token": token})
        barrier.wait()  # everyone answers at the same time
        status, path, page = client.get_following(f"/campagnes/{code}/evaluation")
        while True:
            match = CHALLENGE.search(page)
            if match is None:
                if "/checkpoint" in path and "/evaluation" in page:
                    status, path, page = client.get_following(f"/campagnes/{code}/evaluation")
                    continue
                return  # results: the test is over
            challenge = pack.challenge_by_id[match.group(1)]
            token = CSRF.search(page).group(1)  # type: ignore[union-attr]
            value = expected_answer(challenge)
            right = rng.random() < 0.7
            form: dict[str, object] = {
                "csrf_token": token,
                "challenge_id": challenge.id,
                "action": "valider",
            }
            if challenge.type is ChallengeType.QCM:
                form["answer"] = value.split(",") if right else ["1"]
            elif challenge.type is ChallengeType.QROCM:
                typed = json.loads(value)
                form.update({f"field-{k}": (v if right else "?") for k, v in typed.items()})
                value = json.dumps(
                    {k: (v if right else "?") for k, v in typed.items()}, ensure_ascii=False
                )
            elif challenge.type is ChallengeType.QCU:
                value = value if right else str(len(challenge.proposals) - int(value) + 1)
                form["answer"] = value
            else:
                value = value if right else "je ne sais pas"
                form["answer"] = value
            if challenge.type is ChallengeType.QCM and not right:
                value = "1"
            if think:
                time.sleep(rng.uniform(0.5, 1.5) * think)  # reading and answering
            start = time.perf_counter()
            status, location, _ = client.request("POST", f"/campagnes/{code}/evaluation", form)
            if status != 302:
                raise RuntimeError(f"answer answered {status}")
            status, path, page = client.get_following(location)
            student.latencies.append((time.perf_counter() - start) * 1000)
            student.sent.append((challenge.id, value))
            if status != 200:
                raise RuntimeError(f"next page answered {status}")
    except Exception as error:  # recorded, counted, reported
        student.errors.append(f"{type(error).__name__}: {error}")


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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean time a student spends on a question (0: answer back-to-back, the worst case)",
    )
    args = parser.parse_args()

    from engine.content import load_pack

    base = make_url(
        os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    )
    if base.host not in ("127.0.0.1", "localhost"):
        sys.exit("BENCH_DATABASE_URL must point at this machine")
    name = f"parcours_bench_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    server = None
    try:
        code, _ = seed(url, args.students)
        port = free_port()
        env = dict(
            os.environ,
            DATABASE_URL=url,
            PARCOURS_ENV="development",
            PUBLIC_URL="http://127.0.0.1:5000",
            SECRET_KEY=secrets.token_urlsafe(48),
            LOG_LEVEL="WARNING",
            DATABASE_POOL_SIZE=str(args.threads),
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--worker-class", "gthread",
             "--threads", str(args.threads), "--bind", f"127.0.0.1:{port}", "--no-control-socket",
             "--log-level", "warning", "wsgi:app"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        for _ in range(150):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        pack = load_pack()
        students = [Student(f"eleve{n}@banc.example") for n in range(args.students)]
        barrier = threading.Barrier(args.students + 1)
        threads = [
            threading.Thread(
                target=take_test, args=(port, code, s, pack, random.Random(n), barrier)
            )
            for n, s in enumerate(students)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        stored = stored_answers(url)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    latencies = [x for s in students for x in s.latencies]
    answers = sum(len(s.sent) for s in students)
    lost = sum(1 for s in students if stored.get(s.email, []) != s.sent)
    report = {
        "students": args.students,
        "workers": args.workers,
        "threads": args.threads,
        "think_ms": args.think_ms,
        "answers": answers,
        "seconds": round(elapsed, 2),
        "answers_per_second": round(answers / elapsed, 1) if elapsed else 0,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 1) if latencies else None,
            "p95": round(percentile(latencies, 0.95), 1) if latencies else None,
            "p99": round(percentile(latencies, 0.99), 1) if latencies else None,
        },
        "errors": sum(len(s.errors) for s in students),
        "students_whose_stored_answers_differ": lost,
        "first_errors": [e for s in students for e in s.errors][:5],
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    print(
        f"{args.students} students (think {args.think_ms:.0f} ms), "
        f"gunicorn {args.workers} workers × {args.threads} threads: "
        f"{answers} answers in {elapsed:.1f} s = {report['answers_per_second']} answers/s"
    )
    lat = report["latency_ms"]
    print(
        f"submit an answer and get the next page: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms"
    )  # type: ignore[index]
    print(
        f"errors: {report['errors']}; students whose stored answers differ from those sent: {lost}"
    )
    if statistics and report["first_errors"]:
        print("first errors:", *report["first_errors"], sep="\n  ")


if __name__ == "__main__":
    main()
