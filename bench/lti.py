"""LTI 1.3 under load: launches, a class launching at once, and grade passback, against gunicorn
on PostgreSQL and a fake LMS on 127.0.0.1.

    python -m bench.lti [--json] [--launches 150] [--class-size 30] [--grades 1000]
                        [--workers 3] [--grade-workers 2]

The bench process serves a fake platform (a threaded HTTP server on a free port of 127.0.0.1):
its JWKS, an OAuth2 token endpoint that counts token requests per scope set, a line item
container (GET, POST) and `<lineitem>/scores`, which records every score per (line item, userId)
and answers 204. It creates a throwaway PostgreSQL database next to BENCH_DATABASE_URL (default:
the local `test` database), seeds a school, a 60-skill assessment campaign and the platform
(`registry.add_platform`), and starts gunicorn with `PUBLIC_URL` set to the address it is
reached at, so that the launches' `target_link_uri` and our `redirect_uri` are real. Simulated
learners live in load generator processes (asyncio, the minimal HTTP client of
`bench.http_answers`), in courses of 30 (one resource link each). It measures:

1. Launches: each learner does GET /lti/login, reads the state and nonce from the redirect,
   POSTs /lti/launch with an id_token signed by the platform (custom `campaign_code`, AGS claim),
   and follows to the rules page, then to the first question: launches per second, round trips,
   the CPU each side spent per launch (gunicorn's processes, the database's backends, the load
   generator). Side by side, each of them answers 5 questions, one checkpoint cycle (the fifth
   answer leads to the checkpoint page, then to the next question), as a test's answers cost on
   average: the CPU per answer, and the ratio of server CPU "launch / answer" (target: ≤ 2); the
   first 3 answers alone (no checkpoint, the cheapest of a test) are also reported, with their
   ratio. Launches and answers alternate course by
   course (a course's launches, then their answers, then the next course), each side summed over
   the rounds, so that the machine's load weighs on both alike. A warm-up of two launches per
   gunicorn worker comes first, not counted.
2. A class: `--class-size` first launches of one new resource link, all logins first, then every
   launch POST released at once: p50, p95 (target ≤ 300 ms) and max latency of the POST, errors
   (target 0), and in the database one LtiLearner and one participation per student.
3. Grades: `--grades` LTI learners with shared participations written in bulk (courses of 30,
   each link with its line item on the fake platform), one `lti.publish_score` job each queued
   by `lti_tool.grades.queue` in one transaction, committed while `--grade-workers`
   `parcours worker` processes wait: the time from that commit to the last score received
   (target ≤ 10 s; the workers poll every second when idle, as deployed), token requests
   (target: one per platform and scope set — two workers missing the cache at the same instant
   may each ask, and that is counted), scores received, learners without one (lost), scores
   received twice (same userId and timestamp), scores that differ from the shared mastery, and
   the CPU per grade (workers, database). The grade jobs the launches queued (one per learner,
   as a start does) are counted, then withdrawn before this phase: it delivers `--grades` only.

Every figure is printed in one table with its target and PASS, MISS or INFO (no target); rows
are never dropped. Only 127.0.0.1 is ever contacted; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK
from sqlalchemy import create_engine, text

from bench.common import (
    ROOT,
    ScratchDatabase,
    free_port,
    gunicorn,
    percentile,
    school_with_admin,
    scratch_database,
)
from bench.http_answers import CHALLENGE, CSRF, Client, Student, answer_form

COURSE = 30  # learners per resource link (one class) in the launch and grade phases
# Answers per launched learner, measured side by side with the launches: one checkpoint cycle
# (every fifth answer leads to the checkpoint page, then the next question), an answer as the
# test's students pay for it on average. The first EARLY of them are also reported alone.
ANSWERS = 5
EARLY = 3
CLIENTS = 2  # load generator processes
GRADE_DEADLINE = 60.0  # seconds to wait for the grades before counting what is missing
TARGETS = {
    "launch_answer_cpu_ratio": 2.0,
    "class_p95_ms": 300.0,
    "grades_seconds": 10.0,
}

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
AGS_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPES = [AGS_SCOPE + "lineitem", AGS_SCOPE + "score", AGS_SCOPE + "result.readonly"]
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
SCORES_PATH = re.compile(r"(/lineitems/\d+/lineitem)/scores")
GRADE_JOB = "lti.publish_score"


# -- the fake platform ------------------------------------------------------------------------------


class FakePlatform:
    """The LMS side, served from this process on a free port of 127.0.0.1: JWKS, OAuth2 token,
    line items and scores, with what it received (guarded by `lock`)."""

    client_id = "parcours-bench"
    deployment_id = "1"
    kid = "bench-platform-1"

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public = JWK.from_pem(self.private_pem.encode()).export_public(as_dict=True)
        public.update(kid=self.kid, alg="RS256", use="sig")
        self.jwks = {"keys": [public]}
        self.lock = threading.Lock()
        self.jwks_requests = 0
        self.token_requests: Counter[str] = Counter()  # scope set → requests
        self.tokens: set[str] = set()
        self.refused = 0  # calls without a valid token, or malformed
        self.lineitem_calls: Counter[str] = Counter()  # "GET" / "POST" on the container
        self.lineitems: list[dict[str, Any]] = []
        self.scores: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.first_score_at: float | None = None
        self.last_score_at: float | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), PlatformHandler)
        self.server.daemon_threads = True
        self.server.platform = self  # type: ignore[attr-defined]
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakePlatform:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def auth_login_url(self) -> str:
        return self.issuer + "/auth"

    @property
    def auth_token_url(self) -> str:
        return self.issuer + "/token"

    @property
    def key_set_url(self) -> str:
        return self.issuer + "/jwks"

    @property
    def lineitems_url(self) -> str:
        return self.issuer + "/lineitems"

    def lineitem_url(self, n: int) -> str:
        return f"{self.issuer}/lineitems/{n}/lineitem"

    def reset_counts(self) -> None:
        with self.lock:
            self.token_requests.clear()
            self.refused = 0
            self.lineitem_calls.clear()
            self.scores.clear()
            self.first_score_at = self.last_score_at = None

    @property
    def scored(self) -> int:
        """How many (line item, userId) received at least one score."""
        with self.lock:
            return len(self.scores)

    # -- what the endpoints do (called by the handler's threads) --

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            assertion = form["client_assertion"]
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except (KeyError, jwt.InvalidTokenError):
            return 400, {"error": "invalid_client"}
        if (
            form.get("grant_type") != "client_credentials"
            or claims.get("iss") != self.client_id
            or claims.get("sub") != self.client_id
            or not header.get("kid")
        ):
            return 400, {"error": "invalid_client"}
        scopes = " ".join(sorted(form.get("scope", "").split()))
        token = f"bench-{uuid.uuid4().hex}"
        with self.lock:
            self.token_requests[scopes] += 1
            self.tokens.add(token)
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": scopes,
        }

    def authorized(self, header: str) -> bool:
        with self.lock:
            ok = header.startswith("Bearer ") and header[7:] in self.tokens
            if not ok:
                self.refused += 1
            return ok

    def score(self, lineitem: str, body: dict[str, Any]) -> None:
        now = time.perf_counter()
        with self.lock:
            self.scores[(lineitem, str(body.get("userId")))].append(body)
            if self.first_score_at is None:
                self.first_score_at = now
            self.last_score_at = now


class PlatformHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def platform(self) -> FakePlatform:
        return self.server.platform  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any = None, content_type: str = "application/json") -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.platform.authorized(self.headers.get("Authorization", "")):
            return True
        self._reply(401, {"error": "invalid_token"})
        return False

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/jwks":
            with self.platform.lock:
                self.platform.jwks_requests += 1
            self._reply(200, self.platform.jwks)
        elif path == "/lineitems":
            if not self._authorized():
                return
            wanted = {k: v[0] for k, v in parse_qs(query).items()}
            with self.platform.lock:
                self.platform.lineitem_calls["GET"] += 1
                items = [
                    item
                    for item in self.platform.lineitems
                    if wanted.get("resource_link_id") in (None, item.get("resourceLinkId"))
                    and wanted.get("tag") in (None, item.get("tag"))
                ]
            self._reply(200, items, "application/vnd.ims.lis.v2.lineitemcontainer+json")
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.partition("?")[0]
        if path == "/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            self._reply(*self.platform.token(form))
            return
        if path == "/lineitems":
            if not self._authorized():
                return
            item = json.loads(body)
            with self.platform.lock:
                self.platform.lineitem_calls["POST"] += 1
                item["id"] = self.platform.lineitem_url(10_000 + len(self.platform.lineitems))
                self.platform.lineitems.append(item)
            self._reply(201, item, LINEITEM_TYPE)
            return
        found = SCORES_PATH.fullmatch(path)
        if found is None:
            self._reply(404, {"error": "not found"})
            return
        if not self._authorized():
            return
        if self.headers.get("Content-Type") != SCORE_TYPE:
            self._reply(415, {"error": "expected " + SCORE_TYPE})
            return
        self.platform.score(self.platform.issuer + found.group(1), json.loads(body))
        self._reply(204)


# -- seeding ----------------------------------------------------------------------------------------


def seed(database_url: str, platform: FakePlatform) -> tuple[str, int]:
    """Migrate, import the bundled content, create the school, its campaign on `tp-cycle4` and
    the platform's registration. Returns the campaign's code and id."""
    from sqlalchemy import select

    from campaigns.orga import campaign_admin
    from campaigns.shared.content import import_pack
    from campaigns.shared.models import CampaignType, TargetProfile
    from config.db import Database
    from config.migrations import upgrade
    from config.settings import Settings
    from engine.content import BUNDLED_PACK
    from lti_tool import registry

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
            session, organization=organization, creator=admin, name="Banc d’essai LTI",
            type=CampaignType.ASSESSMENT, target_profile=profile, title="Banc d’essai LTI",
        )  # fmt: skip
        registry.add_platform(
            session,
            organization=organization,
            deployment_id=platform.deployment_id,
            name="LMS du banc d’essai",
            issuer=platform.issuer,
            client_id=platform.client_id,
            auth_login_url=platform.auth_login_url,
            auth_token_url=platform.auth_token_url,
            key_set_url=platform.key_set_url,
        )
        session.flush()
        code, campaign_id = campaign.code, campaign.id
    database.dispose()
    return code, campaign_id


# -- the load generator -----------------------------------------------------------------------------


class Signer:
    """The platform's side of a launch: id_tokens signed with its key."""

    def __init__(self, setup: dict[str, Any]) -> None:
        self.key = serialization.load_pem_private_key(setup["private_pem"].encode(), None)
        self.setup = setup
        self.target = setup["public_url"] + "/lti/launch"

    def id_token(self, nonce: str, sub: str, link: str, course: int) -> str:
        setup = self.setup
        now = int(time.time())
        body = {
            "iss": setup["issuer"],
            "aud": setup["client_id"],
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "sub": sub,
            "given_name": "Élève",
            "family_name": sub,
            "name": f"Élève {sub}",
            LTI + "deployment_id": setup["deployment_id"],
            LTI + "message_type": "LtiResourceLinkRequest",
            LTI + "version": "1.3.0",
            LTI + "roles": [LEARNER],
            LTI + "target_link_uri": self.target,
            LTI + "resource_link": {"id": link, "title": "Évaluation PIX"},
            LTI + "context": {"id": f"course-{course}", "label": "SNT", "title": f"SNT {course}"},
            LTI + "custom": {"campaign_code": setup["code"]},
            AGS: {
                "scope": SCOPES,
                "lineitems": setup["issuer"] + "/lineitems",
                "lineitem": f"{setup['issuer']}/lineitems/{course}/lineitem",
            },
        }
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": setup["kid"]})  # type: ignore[arg-type]


async def follow(client: Client, path: str) -> tuple[int, str, str, int]:
    """GET `path` and its redirects: (status, final path, page, round trips)."""
    status, location, page = await client.request("GET", path)
    trips = 1
    while status in (301, 302, 303) and location:
        path = location
        status, location, page = await client.request("GET", path)
        trips += 1
    return status, path, page, trips


async def login(client: Client, signer: Signer, link: str, course: int) -> tuple[str, str]:
    """The platform sends the browser to /lti/login; our redirect carries state and nonce.
    Returns the state and the id_token the platform signs for them."""
    setup = signer.setup
    query = urlencode(
        {
            "iss": setup["issuer"],
            "login_hint": client.student.email,
            "target_link_uri": signer.target,
            "lti_message_hint": link,
            "client_id": setup["client_id"],
            "lti_deployment_id": setup["deployment_id"],
        }
    )
    status, location, _ = await client.request("GET", f"/lti/login?{query}")
    if status != 302:
        raise RuntimeError(f"login answered {status}")
    sent = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if sent.get("redirect_uri") != signer.target:
        raise RuntimeError(f"redirect_uri {sent.get('redirect_uri')!r} is not {signer.target!r}")
    token = signer.id_token(sent["nonce"], client.student.email, link, course)
    return sent["state"], token


async def launch(client: Client, signer: Signer, link: str, course: int) -> tuple[int, str]:
    """A whole launch, to the first question: (round trips, the question page)."""
    state, token = await login(client, signer, link, course)
    status, location, _ = await client.request(
        "POST", "/lti/launch", {"id_token": token, "state": state}
    )
    if status != 303:
        raise RuntimeError(f"launch answered {status}")
    status, path, _, trips = await follow(client, location)
    if status != 200 or "/regles/1" not in path:
        raise RuntimeError(f"the launch led to {path} ({status}), not to the rules")
    code = signer.setup["code"]
    status, path, page, more = await follow(client, f"/campagnes/{code}/evaluation")
    if status != 200 or CHALLENGE.search(page) is None:
        raise RuntimeError(f"no question at {path} ({status})")
    return 2 + trips + more, page


async def answer(client: Client, code: str, page: str, pack: Any, count: int) -> str:
    """Answer `count` questions from `page` as http_answers does: the POST and the next page,
    and after the checkpoint page the question that follows it."""
    student = client.student
    rng = random.Random(student.email)
    for _ in range(count):
        match = CHALLENGE.search(page)
        if match is None:
            raise RuntimeError("no question to answer")
        challenge = pack.challenge_by_id[match.group(1)]
        form, value = answer_form(challenge, right=rng.random() < 0.7)
        form["csrf_token"] = CSRF.search(page).group(1)  # type: ignore[union-attr]
        start = time.perf_counter()
        status, location, _ = await client.request("POST", f"/campagnes/{code}/evaluation", form)
        if status != 302:
            raise RuntimeError(f"answer answered {status}")
        status, path, page, _ = await follow(client, location)
        if CHALLENGE.search(page) is None and "/checkpoint" in path:
            # The checkpoint leads to the next question, or, the test over, to the results.
            after = "/resultats" if f"/campagnes/{code}/resultats" in page else "/evaluation"
            status, path, page, _ = await follow(client, f"/campagnes/{code}{after}")
        student.latencies.append((time.perf_counter() - start) * 1000)
        student.sent.append((challenge.id, value))
        if status != 200:
            raise RuntimeError(f"next page {path} answered {status}")
        if CHALLENGE.search(page) is None and "/resultats" not in path:
            raise RuntimeError(f"neither a question nor the results after an answer: {path}")
    return page


def _error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


def client_process(setup: dict[str, Any], commands: Any, results: Any) -> None:
    """A load generator process: runs the commands of the bench process for its learners."""
    from engine.content import load_pack

    pack = load_pack()
    signer = Signer(setup)
    port, code = setup["port"], setup["code"]
    pages: dict[str, tuple[Student, str]] = {}  # launched learners: their cookies, last page
    ready: list[tuple[Student, str, str]] = []  # the class: logged in, id_token signed

    async def launch_all(learners: list[tuple[str, str, int]]) -> list[Any]:
        async def one(sub: str, link: str, course: int) -> Any:
            client = Client(port, Student(sub))
            try:
                trips, page = await launch(client, signer, link, course)
                pages[sub] = (client.student, page)
                return sub, trips, None
            except Exception as error:  # counted and reported
                return sub, 0, _error(error)
            finally:
                client.close()

        return await asyncio.gather(*(one(*learner) for learner in learners))

    async def answer_all(subs: list[str], count: int) -> list[Any]:
        async def one(sub: str) -> Any:
            student, page = pages[sub]
            client = Client(port, student)
            before = len(student.latencies)
            try:
                pages[sub] = (student, await answer(client, code, page, pack, count))
                error = None
            except Exception as failure:
                error = _error(failure)
            finally:
                client.close()
            return sub, student.latencies[before:], error

        return await asyncio.gather(*(one(sub) for sub in subs if sub in pages))

    async def class_login(learners: list[tuple[str, str, int]]) -> list[Any]:
        async def one(sub: str, link: str, course: int) -> Any:
            client = Client(port, Student(sub))
            try:
                state, token = await login(client, signer, link, course)
                ready.append((client.student, state, token))
                return sub, None
            except Exception as error:
                return sub, _error(error)
            finally:
                client.close()

        return await asyncio.gather(*(one(*learner) for learner in learners))

    async def class_go() -> list[Any]:
        async def one(student: Student, state: str, token: str) -> Any:
            client = Client(port, student)
            start = time.perf_counter()
            try:
                status, _, _ = await client.request(
                    "POST", "/lti/launch", {"id_token": token, "state": state}
                )
                error = None if status == 303 else f"launch answered {status}"
            except Exception as failure:
                error = _error(failure)
            finally:
                client.close()
            return student.email, (time.perf_counter() - start) * 1000, error

        launched = await asyncio.gather(*(one(*entry) for entry in ready))
        ready.clear()
        return launched

    while True:
        command, argument = commands.get()
        if command == "stop":
            return
        if command == "launch":
            outcome = asyncio.run(launch_all(argument))
        elif command == "answer":
            outcome = asyncio.run(answer_all(*argument))
        elif command == "class_login":
            outcome = asyncio.run(class_login(argument))
        else:
            outcome = asyncio.run(class_go())
        results.put(outcome)


class LoadGenerator:
    """`CLIENTS` load generator processes; `run` hands each its share and waits for all."""

    def __init__(self, setup: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")
        self.results = context.Queue()
        self.commands = [context.Queue() for _ in range(CLIENTS)]
        self.processes = [
            context.Process(target=client_process, args=(setup, queue, self.results))
            for queue in self.commands
        ]
        for process in self.processes:
            process.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def run(self, command: str, items: list[Any], extra: Any = None) -> list[Any]:
        for n, queue in enumerate(self.commands):
            # Answers go to every process: each answers for the learners it launched.
            share = items if command == "answer" else items[n::CLIENTS]
            queue.put((command, (share, extra) if extra is not None else share))
        gathered: list[Any] = []
        for _ in self.commands:
            while True:
                try:
                    gathered += self.results.get(timeout=1)
                    break
                except Exception:  # queue.Empty: check that nobody died
                    if not all(p.is_alive() for p in self.processes):
                        sys.exit("a load generator process stopped")
        return gathered

    def close(self) -> None:
        for queue in self.commands:
            queue.put(("stop", None))
        for process in self.processes:
            process.join(timeout=30)


# -- measuring --------------------------------------------------------------------------------------


def cpu_of(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds of each process so far (absent when gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


def children_of(master: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == master:
                found.append(int(entry.name))
    return found


class Meter:
    """CPU seconds each side spent between enter and exit, and the wall time. A side is a
    function giving its processes; processes that appear meanwhile count from zero."""

    def __init__(self, **sides: Callable[[], Iterable[int]]) -> None:
        self.sides = sides
        self.used: dict[str, float] = {}

    def __enter__(self) -> Meter:
        self.before = {side: cpu_of(pids()) for side, pids in self.sides.items()}
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        for side, pids in self.sides.items():
            before = self.before[side]
            self.used[side] = sum(t - before.get(p, 0.0) for p, t in cpu_of(pids()).items())


class Tally:
    """The sum of several measurements (rounds), per side, and their wall time."""

    def __init__(self) -> None:
        self.used: dict[str, float] = defaultdict(float)
        self.seconds = 0.0

    def add(self, measured: Meter | Tally) -> None:
        for side, seconds in measured.used.items():
            self.used[side] += seconds
        self.seconds += measured.seconds


def backends_of(database: ScratchDatabase) -> Callable[[], list[int]]:
    """The PostgreSQL backends serving the scratch database (its CPU, not the machine's)."""

    def backends() -> list[int]:
        with database.admin.connect() as connection:
            return list(
                connection.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                    {"name": database.name},
                ).scalars()
            )

    return backends


def per(used: dict[str, float], count: int) -> dict[str, float | None]:
    return {side: round(s * 1000 / count, 2) if count else None for side, s in used.items()}


def measure_launches(
    generator: LoadGenerator, meter: Callable[[], Meter], launches: int, workers: int
) -> dict[str, Any]:
    warmup = [(f"warmup-{n}", "warmup", 0) for n in range(2 * workers)]
    warmed = generator.run("launch", warmup)
    warmed += generator.run("answer", [sub for sub, *_ in warmup], 1)
    learners = [(f"launch-{n}", f"course-{n // COURSE}", n // COURSE) for n in range(launches)]
    # Round by round (a course each), its launches then their answers: the machine's noise falls
    # on both sides of the ratio alike.
    launched: list[Any] = []
    answered: list[Any] = []
    early: list[Any] = []
    launch_meter, early_meter, late_meter = Tally(), Tally(), Tally()
    for first in range(0, launches, COURSE):
        with meter() as measured:
            round_launched = generator.run("launch", learners[first : first + COURSE])
        launch_meter.add(measured)
        ok_in_round = [sub for sub, _, error in round_launched if error is None]
        with meter() as measured:
            early += generator.run("answer", ok_in_round, EARLY)
        early_meter.add(measured)
        with meter() as measured:
            answered += generator.run("answer", ok_in_round, ANSWERS - EARLY)
        late_meter.add(measured)
        launched += round_launched
    answered += early
    answer_meter = Tally()
    answer_meter.add(early_meter)
    answer_meter.add(late_meter)
    ok = [sub for sub, _, error in launched if error is None]
    answers = sum(len(latencies) for _, latencies, _ in answered)
    early_answers = sum(len(latencies) for _, latencies, _ in early)
    errors = [e for *_, e in warmed + launched + answered if e is not None]
    trips = [t for _, t, error in launched if error is None]
    cpu_launch = per(launch_meter.used, len(ok))
    cpu_answer = per(answer_meter.used, answers)
    cpu_early = per(early_meter.used, early_answers)

    def ratio_to(answer: dict[str, float | None]) -> float | None:
        launch, one = cpu_launch["server"], answer["server"]
        return round(launch / one, 2) if launch and one else None

    latencies = [x for _, lat, _ in answered for x in lat]
    return {
        "warmup_launches": len(warmup),
        "launches": len(ok),
        "seconds": round(launch_meter.seconds, 2),
        "launches_per_second": round(len(ok) / launch_meter.seconds, 1) if ok else 0,
        "round_trips_per_launch": round(sum(trips) / len(trips), 2) if trips else None,
        "cpu_ms_per_launch": cpu_launch,
        "answers": answers,
        "answers_per_second": round(answers / answer_meter.seconds, 1) if answers else 0,
        "answer_latency_ms_p50": round(percentile(latencies, 0.5), 1) if latencies else None,
        "cpu_ms_per_answer": cpu_answer,
        "launch_answer_server_cpu_ratio": ratio_to(cpu_answer),
        "cpu_ms_per_early_answer": cpu_early,
        "launch_early_answer_server_cpu_ratio": ratio_to(cpu_early),
        "errors": len(errors),
        "first_errors": errors[:5],
    }


def measure_class(
    generator: LoadGenerator, meter: Callable[[], Meter], size: int
) -> dict[str, Any]:
    students = [(f"class-{n}", "class", 9999) for n in range(size)]
    with meter() as login_meter:
        logged = generator.run("class_login", students)
    with meter() as launch_meter:
        posted = generator.run("class_go", [None] * CLIENTS)
    errors = [e for _, e in logged if e is not None] + [e for *_, e in posted if e is not None]
    latencies = [ms for _, ms, error in posted if error is None]
    return {
        "students": size,
        "launched": len(latencies),
        "errors": len(errors),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 1) if latencies else None,
            "p95": round(percentile(latencies, 0.95), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
        },
        # Where a launch's CPU goes: the login, then the launch POST (its redirect not followed).
        "cpu_ms_per_login": per(login_meter.used, len(logged)),
        "cpu_ms_per_launch_post": per(launch_meter.used, len(posted)),
        "first_errors": errors[:5],
    }


def check_class(database_url: str, size: int) -> dict[str, int]:
    """In the database: the class's resource link, and per student their LtiLearner rows and
    participations in the campaign."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        links = connection.execute(
            text("SELECT count(*) FROM lti_resource_links WHERE resource_link_id = 'class'")
        ).scalar_one()
        rows = connection.execute(
            text(
                "SELECT l.sub, count(DISTINCT l.id), count(DISTINCT p.id) FROM lti_learners l"
                " JOIN lti_resource_links r ON r.id = l.resource_link_id"
                " LEFT JOIN participations p ON p.user_id = l.user_id"
                " AND p.campaign_id = r.campaign_id"
                " WHERE r.resource_link_id = 'class' GROUP BY l.sub"
            )
        ).all()
        accounts = connection.execute(
            text(
                "SELECT count(DISTINCT user_id) FROM lti_learners l JOIN lti_resource_links r"
                " ON r.id = l.resource_link_id WHERE r.resource_link_id = 'class'"
            )
        ).scalar_one()
    engine.dispose()
    expected = {f"class-{n}" for n in range(size)}
    return {
        "resource_links": links,
        "accounts": accounts,
        "students_with_one_learner_and_one_participation": sum(
            1
            for sub, learners, participations in rows
            if sub in expected and learners == 1 == participations
        ),
    }


def withdraw_launch_jobs(database_url: str) -> int:
    """Count the grade jobs the launches queued, and withdraw them (not this phase's)."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        queued = connection.execute(
            text("SELECT count(*) FROM jobs WHERE kind = :kind AND status = 'PENDING'"),
            {"kind": GRADE_JOB},
        ).scalar_one()
        connection.execute(text("DELETE FROM jobs WHERE kind = :kind"), {"kind": GRADE_JOB})
    engine.dispose()
    return int(queued)


def measure_grades(
    database: ScratchDatabase,
    platform: FakePlatform,
    campaign_id: int,
    count: int,
    grade_workers: int,
) -> dict[str, Any]:
    from sqlalchemy import insert, select

    from campaigns.shared.models import Participation, ParticipationStatus, User
    from config.db import Database, utcnow
    from config.settings import Settings
    from lti_tool import grades
    from lti_tool.models import LtiDeployment, LtiLearner, LtiResourceLink

    backends = backends_of(database)
    db = Database(Settings(database_url=database.url))
    rng = random.Random(12)
    workers: list[subprocess.Popen[bytes]] = []
    platform.reset_counts()
    started_seeding = time.perf_counter()
    try:
        with db.session() as session:
            deployment = session.scalars(select(LtiDeployment.id)).one()
            now = utcnow()
            links = session.scalars(
                insert(LtiResourceLink).returning(LtiResourceLink.id, sort_by_parameter_order=True),
                [
                    {
                        "deployment_id": deployment,
                        "resource_link_id": f"grades-{k}",
                        "campaign_id": campaign_id,
                        "title": "Évaluation PIX",
                        "lineitem_url": platform.lineitem_url(1000 + k),
                        "lineitems_url": platform.lineitems_url,
                        "ags_scopes": SCOPES,
                    }
                    for k in range(math.ceil(count / COURSE))
                ],
            ).all()
            with platform.lock:
                platform.lineitems += [
                    {"id": platform.lineitem_url(1000 + k), "resourceLinkId": f"grades-{k}"}
                    for k in range(len(links))
                ]
            users = session.scalars(
                insert(User).returning(User.id, sort_by_parameter_order=True),
                [{"first_name": "Élève", "last_name": f"G{n}"} for n in range(count)],
            ).all()
            rates = [Decimal(rng.randint(0, 10_000)) / 10_000 for _ in range(count)]
            session.execute(
                insert(Participation),
                [
                    {
                        "campaign_id": campaign_id,
                        "user_id": user,
                        "status": ParticipationStatus.SHARED,
                        "created_at": now,
                        "shared_at": now,
                        "mastery_rate": rate,
                    }
                    for user, rate in zip(users, rates, strict=True)
                ],
            )
            learner_ids = session.scalars(
                insert(LtiLearner).returning(LtiLearner.id, sort_by_parameter_order=True),
                [
                    {
                        "resource_link_id": links[n // COURSE],
                        "user_id": user,
                        "sub": f"grade-{n}",
                        "first_launch_at": now,
                        "last_launch_at": now,
                    }
                    for n, user in enumerate(users)
                ],
            ).all()
            for learner_id in sorted(learner_ids):
                grades.queue(session, learner_id)  # as a share does
            expected = {
                (platform.lineitem_url(1000 + n // COURSE), f"grade-{n}"): float(
                    round(rate * 100, 2)
                )
                for n, rate in enumerate(rates)
            }
            seed_seconds = time.perf_counter() - started_seeding
            # The workers start against an empty queue (this transaction is not committed).
            present = len(backends())
            env = dict(
                os.environ,
                DATABASE_URL=database.url,
                PARCOURS_ENV="development",
                SECRET_KEY=secrets.token_urlsafe(48),
                LOG_LEVEL="WARNING",
            )
            workers = [
                subprocess.Popen([sys.executable, "-m", "config.cli", "worker"], cwd=ROOT, env=env)
                for _ in range(grade_workers)
            ]
            deadline = time.perf_counter() + 60
            while len(backends()) < present + grade_workers:  # each worker connected
                if time.perf_counter() > deadline or any(w.poll() is not None for w in workers):
                    sys.exit("the grade workers did not start")
                time.sleep(0.1)
            time.sleep(0.5)  # their first round (maintenance, an empty queue) is over
            meter = Meter(workers=lambda: [w.pid for w in workers], database=backends)
            meter.__enter__()
            platform_cpu = time.process_time()
            session.commit()
            committed = time.perf_counter()
        deadline = committed + GRADE_DEADLINE
        checked = committed
        while platform.scored < count and time.perf_counter() < deadline:
            time.sleep(0.02)
            if time.perf_counter() - checked > 1:  # nothing left to run: stop waiting
                checked = time.perf_counter()
                with db.engine.connect() as connection:
                    busy = connection.execute(
                        text(
                            "SELECT count(*) FROM jobs WHERE kind = :kind"
                            " AND status IN ('PENDING', 'RUNNING')"
                        ),
                        {"kind": GRADE_JOB},
                    ).scalar_one()
                if not busy:
                    break
        settle = time.perf_counter() + 10
        while time.perf_counter() < settle:  # the last DONE marks commit after the last score
            with db.engine.connect() as connection:
                running = connection.execute(
                    text("SELECT count(*) FROM jobs WHERE status = 'RUNNING'")
                ).scalar_one()
            if not running:
                break
            time.sleep(0.05)
        meter.__exit__(None, None, None)
        platform_cpu = time.process_time() - platform_cpu
        with db.engine.connect() as connection:
            jobs = dict(
                connection.execute(
                    text("SELECT status, count(*) FROM jobs WHERE kind = :k GROUP BY status"),
                    {"k": GRADE_JOB},
                ).all()
            )
            ran_jobs = connection.execute(
                text(
                    "SELECT count(DISTINCT locked_by) FROM jobs WHERE kind = :k AND status = 'DONE'"
                ),
                {"k": GRADE_JOB},
            ).scalar_one()
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        db.dispose()

    with platform.lock:
        scores = {key: list(sent) for key, sent in platform.scores.items()}
        tokens = dict(platform.token_requests)
        first_at, last_at = platform.first_score_at, platform.last_score_at
        refused = platform.refused
        lineitem_calls = dict(platform.lineitem_calls)
    received = sum(len(sent) for key, sent in scores.items() if key in expected)
    lost = sum(1 for key in expected if not scores.get(key))
    duplicates = sum(
        len(sent) - len({s.get("timestamp") for s in sent})
        for key, sent in scores.items()
        if key in expected
    )
    wrong = sum(
        1
        for key, score in expected.items()
        if scores.get(key)
        and (
            scores[key][-1].get("scoreGiven") != score
            or scores[key][-1].get("activityProgress") != "Completed"
        )
    )
    delivered = lost == 0 and last_at is not None
    return {
        "learners": count,
        "seed_seconds": round(seed_seconds, 1),
        "grade_worker_processes": len(workers),
        "workers_that_ran_jobs": int(ran_jobs),
        "seconds": round(last_at - committed, 2) if delivered and last_at else None,
        "first_score_s": round(first_at - committed, 2) if first_at else None,
        "token_requests": sum(tokens.values()),
        "token_requests_by_scopes": tokens,
        "scope_sets": 1,  # every link was granted the same scopes, on one platform
        "scores_received": received,
        "lost": lost,
        "duplicates": duplicates,
        "wrong_scores": wrong,
        "unauthorized_calls": refused,
        "line_item_calls": lineitem_calls,
        "jobs": {str(k): v for k, v in jobs.items()},
        "cpu_ms_per_grade": {
            **per(meter.used, count),
            "platform": round(platform_cpu * 1000 / count, 2),
        },
    }


# -- the report -------------------------------------------------------------------------------------


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure with its target and verdict (INFO: measured, no target)."""
    launch, klass, grades = report["launch"], report["class"], report["grades"]
    found: list[dict[str, Any]] = []

    def row(figure: str, value: Any, target: str = "—", ok: bool | None = None) -> None:
        verdict = "INFO" if ok is None else "PASS" if ok else "MISS"
        found.append({"figure": figure, "value": value, "target": target, "verdict": verdict})

    cpu_l, cpu_a = launch["cpu_ms_per_launch"], launch["cpu_ms_per_answer"]
    ratio = launch["launch_answer_server_cpu_ratio"]
    row("launches per second", launch["launches_per_second"])
    row("round trips per launch", launch["round_trips_per_launch"])
    row("server CPU per launch (ms)", cpu_l["server"])
    row("database CPU per launch (ms)", cpu_l["database"])
    row("load generator CPU per launch (ms)", cpu_l["clients"])
    row("server CPU per answer (ms)", cpu_a["server"])
    row("database CPU per answer (ms)", cpu_a["database"])
    row(
        "server CPU: launch / answer",
        ratio,
        f"≤ {TARGETS['launch_answer_cpu_ratio']:g}",
        ratio is not None and ratio <= TARGETS["launch_answer_cpu_ratio"],
    )
    row(
        f"server CPU per answer, the first {EARLY} only (ms)",
        launch["cpu_ms_per_early_answer"]["server"],
    )
    row(
        f"server CPU: launch / answer, the first {EARLY} only",
        launch["launch_early_answer_server_cpu_ratio"],
    )
    row("launch and answer errors", launch["errors"], "0", launch["errors"] == 0)
    lat = klass["latency_ms"]
    row(f"class of {klass['students']}: launch POST p50 (ms)", lat["p50"])
    row(
        f"class of {klass['students']}: launch POST p95 (ms)",
        lat["p95"],
        f"≤ {TARGETS['class_p95_ms']:g}",
        lat["p95"] is not None and lat["p95"] <= TARGETS["class_p95_ms"],
    )
    row(f"class of {klass['students']}: launch POST max (ms)", lat["max"])
    row("class: server CPU per login (ms)", klass["cpu_ms_per_login"]["server"])
    row("class: server CPU per launch POST (ms)", klass["cpu_ms_per_launch_post"]["server"])
    row("class: database CPU per launch POST (ms)", klass["cpu_ms_per_launch_post"]["database"])
    row("class errors", klass["errors"], "0", klass["errors"] == 0)
    one = klass["students_with_one_learner_and_one_participation"]
    row(
        "class: students with 1 LtiLearner and 1 participation",
        one,
        str(klass["students"]),
        one == klass["students"] and klass["resource_links"] == 1,
    )
    launched = report["learners_launched"]
    row(
        "grade jobs queued by the launches",
        report["launch_queued_grade_jobs"],
        f"{launched} (1 per learner)",
        report["launch_queued_grade_jobs"] == launched,
    )
    seconds = grades["seconds"]
    row(
        f"{grades['learners']} grades: wall time to deliver (s)",
        seconds,
        f"≤ {TARGETS['grades_seconds']:g}",
        seconds is not None and seconds <= TARGETS["grades_seconds"],
    )
    row(
        "token requests",
        grades["token_requests"],
        str(grades["scope_sets"]),
        grades["token_requests"] == grades["scope_sets"],
    )
    row(
        "scores received",
        grades["scores_received"],
        str(grades["learners"]),
        grades["scores_received"] == grades["learners"],
    )
    row("lost (learners without a score)", grades["lost"], "0", grades["lost"] == 0)
    row("duplicates (same userId and timestamp)", grades["duplicates"], "0", grades["duplicates"] == 0)  # fmt: skip
    row("scores that differ from the shared mastery", grades["wrong_scores"], "0", grades["wrong_scores"] == 0)  # fmt: skip
    row("grade worker CPU per grade (ms)", grades["cpu_ms_per_grade"]["workers"])
    row("database CPU per grade (ms)", grades["cpu_ms_per_grade"]["database"])
    return found


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--launches", type=positive, default=150)
    parser.add_argument("--class-size", type=positive, default=30)
    parser.add_argument("--grades", type=positive, default=1000)
    parser.add_argument("--workers", type=positive, default=3, help="gunicorn sync workers")
    parser.add_argument(
        "--grade-workers", type=positive, default=2, help="`parcours worker` processes"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    with FakePlatform() as platform, scratch_database() as database:
        code, campaign_id = seed(database.url, platform)
        port = free_port()  # gunicorn also listens here, the address PUBLIC_URL names
        public_url = f"http://127.0.0.1:{port}"
        options = ["--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
                   "--env", f"PUBLIC_URL={public_url}"]  # fmt: skip
        with gunicorn(database.url, options) as (server, _):
            setup = {
                "port": port,
                "public_url": public_url,
                "code": code,
                "issuer": platform.issuer,
                "client_id": platform.client_id,
                "deployment_id": platform.deployment_id,
                "kid": platform.kid,
                "private_pem": platform.private_pem,
            }
            generator = LoadGenerator(setup)
            try:
                backends = backends_of(database)

                def meter() -> Meter:
                    return Meter(
                        server=lambda: [server.pid, *children_of(server.pid)],
                        database=backends,
                        clients=lambda: generator.pids,
                    )

                launch = measure_launches(generator, meter, args.launches, args.workers)
                server_workers = len(children_of(server.pid))
                klass = measure_class(generator, meter, args.class_size)
            finally:
                generator.close()
        klass |= check_class(database.url, args.class_size)
        launch_jobs = withdraw_launch_jobs(database.url)
        jwks_requests = platform.jwks_requests
        grades = measure_grades(database, platform, campaign_id, args.grades, args.grade_workers)

    report: dict[str, Any] = {
        "launches": args.launches,
        "class_size": args.class_size,
        "grades_requested": args.grades,
        "workers": args.workers,
        "server_workers": server_workers,
        "grade_workers": args.grade_workers,
        "launch": launch,
        "class": klass,
        "jwks_requests": jwks_requests,
        "learners_launched": launch["warmup_launches"] + launch["launches"] + klass["launched"],
        "launch_queued_grade_jobs": launch_jobs,
        "grades": grades,
        "targets": TARGETS,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    report["rows"] = rows(report)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    print(
        f"LTI: {args.launches} launches (+{launch['warmup_launches']} warm-up) and "
        f"{launch['answers']} answers, a class of {args.class_size}, {args.grades} grades; "
        f"gunicorn {server_workers} sync workers, {args.grade_workers} grade workers; "
        f"{report['total_seconds']} s in all"
    )
    width = max(len(r["figure"]) for r in report["rows"])
    print(f"{'figure':<{width}}  {'value':>10}  {'target':<16}  verdict")
    for r in report["rows"]:
        value = "—" if r["value"] is None else r["value"]
        print(f"{r['figure']:<{width}}  {value!s:>10}  {r['target']:<16}  {r['verdict']}")
    g = grades
    print(
        f"grades: first score after {g['first_score_s']} s; tokens by scope set "
        f"{g['token_requests_by_scopes']}; jobs {g['jobs']}; {g['workers_that_ran_jobs']} "
        f"workers ran jobs; CPU per grade: platform (this process) "
        f"{g['cpu_ms_per_grade']['platform']} ms; JWKS fetched {jwks_requests}×"
    )
    for errors in (launch["first_errors"], klass["first_errors"]):
        if errors:
            print("first errors:", *errors, sep="\n  ")


if __name__ == "__main__":
    main()
