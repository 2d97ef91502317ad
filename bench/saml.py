"""SAML / GAR sign-ins under load, against gunicorn on PostgreSQL, with an identity provider played
by the load generators (responses signed with its throwaway key by `sso.devidp.mint_response`).

    python -m bench.saml [--json] [--logins 200] [--rush 300] [--rush-seconds 60]
                         [--doubles 15] [--workers 3]

It creates a throwaway PostgreSQL database next to BENCH_DATABASE_URL (default: the local `test`
database), seeds a school (UAI 0759998W) with a 60-skill campaign, a GAR identity provider
attached to it, `--rush` students on its learner list (not yet signed up) and `--logins`
students already matched (account, GAR identity, learner line), and starts gunicorn with
`PUBLIC_URL` set to its real address. Simulated browsers live in load generator processes
(asyncio, the minimal HTTP client of `bench.http_answers`). It measures:

1. Sign-ins of known students, all at once: each does GET /sso/saml/gar/login (our signed
   AuthnRequest; its id and cookie) and the IdP's response is minted for it — this phase is
   measured on its own — then, all together, POST /sso/saml/gar/acs, which checks the
   signature, claims the request, remembers the assertion and signs the student in (then
   "Mes parcours", not measured). Figures: ACS POSTs per second, the CPU each side spent per ACS
   POST and per AuthnRequest (gunicorn's processes, the database's backends, the load
   generator), after a warm-up of 3 sign-ins per gunicorn worker, not counted. Then, side by
   side in the same run, each starts the campaign and answers 3
   questions: CPU per answer (an answer is its POST and the next question's page, as in
   `bench.lti`), and the ratio "ACS POST / answer" of server CPU (target ≤ 2).
2. A morning rush: `--rush` students who never signed in arrive spread evenly over
   `--rush-seconds`; each signs in (ACS POST timed), lands on the birth-date page, types it (the
   match POST timed) and reaches "Mes parcours". `--doubles` of them do it twice at the same
   moment in two browsers. Figures: p50, p95 (target ≤ 500 ms) and max of both POSTs, errors
   (target 0), and in the database one account and one GAR identity per student, each learner
   line linked once (duplicates: target 0).

Every figure is printed with its target and PASS, MISS or INFO; no row is dropped. Only
127.0.0.1 is contacted; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import random
import sys
import time
from collections.abc import Callable
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import create_engine, text

from bench.common import free_port, gunicorn, percentile, school_with_admin, scratch_database
from bench.http_answers import CHALLENGE, CSRF, Client, Student
from bench.lti import Meter, answer, backends_of, children_of, follow, per

SLUG = "gar"
UAI = "0759998W"
ANSWERS = 3
CLIENTS = 2
TARGETS = {"login_answer_cpu_ratio": 2.0, "rush_p95_ms": 500.0}
IDP = "https://idp.gar.bench/idp"
BIRTHDATE = dt.date(2011, 9, 1)


def _names(n: int) -> tuple[str, str]:
    return f"Élève{n}", f"Banc{n}"


def seed(database_url: str, public_url: str, certificate_pem: str, logins: int, rush: int) -> str:
    """Migrate, import the content, make the school, its campaign, the IdP and the students.
    Returns the campaign's code."""
    from sqlalchemy import select

    from campaigns import connectors
    from campaigns.orga import campaign_admin
    from campaigns.shared.content import import_pack
    from campaigns.shared.models import CampaignType, Learner, TargetProfile
    from config.db import Database
    from config.migrations import upgrade
    from config.settings import Settings
    from engine.content import BUNDLED_PACK
    from sso import devidp, registry

    database = Database(Settings(database_url=database_url, public_url=public_url))
    upgrade(database)
    with database.session() as session, session.begin():
        import_pack(session, BUNDLED_PACK)
        organization, admin = school_with_admin(
            session, name="Collège du Banc SAML", uai=UAI, admin_email="prof@banc-saml.example"
        )
        profile = session.scalars(
            select(TargetProfile).where(TargetProfile.content_key == "tp-cycle4")
        ).one()
        campaign = campaign_admin.create_campaign(
            session, organization=organization, creator=admin, name="Banc d’essai SAML",
            type=CampaignType.ASSESSMENT, target_profile=profile, title="Banc d’essai SAML",
        )  # fmt: skip
        registry.add_idp(
            session,
            slug=SLUG,
            metadata=devidp.metadata(IDP, f"{IDP}/sso", [certificate_pem]),
            organizations=[organization],
        )
        for n in range(logins + rush):
            first, last = _names(n)
            session.add(
                Learner(
                    organization_id=organization.id,
                    first_name=first,
                    last_name=last,
                    birthdate=BIRTHDATE + dt.timedelta(days=n % 300),
                    division="4B",
                )
            )
        session.flush()
        for n in range(logins):  # known students: matched before
            first, last = _names(n)
            user = connectors.sign_in_external(
                session,
                connectors.ExternalIdentity(
                    provider=connectors.AuthenticationProvider.SAML,
                    issuer=SLUG,
                    external_id=f"ido-{n}",
                    first_name=first,
                    last_name=last,
                    attributes={"role": "student", "uai": UAI},
                ),
            )
            learner = session.scalars(
                select(Learner).where(Learner.first_name == first, Learner.last_name == last)
            ).one()
            learner.user_id = user.id
        code = campaign.code
    database.dispose()
    return code


# -- the load generator ---------------------------------------------------------------------------


def attributes(n: int) -> dict[str, list[str]]:
    first, last = _names(n)
    return {
        "IDO": [f"ido-{n}"],
        "UAI": [UAI],
        "PRO": ["National_elv"],
        "PRE": [first],
        "NOM": [last],
        "DIV": ["4B##4e B"],
    }


async def ask(client: Client) -> tuple[str, str]:
    """GET our login: the AuthnRequest's id and ACS URL (and its cookie, kept by the client)."""
    from sso import devidp

    status, location, _ = await client.request("GET", f"/sso/saml/{SLUG}/login")
    if status != 302:
        raise RuntimeError(f"login answered {status}")
    request = devidp.read_request(parse_qs(urlsplit(location).query)["SAMLRequest"][0])
    return request["id"], request["acs"]


def mint(setup: dict[str, Any], n: int, request_id: str, acs: str) -> str:
    from sso import devidp

    return devidp.mint_response(
        issuer=IDP,
        private_pem=setup["private_pem"],
        certificate_pem=setup["certificate_pem"],
        acs=acs,
        audience=f"{setup['public_url']}/sso/saml/{SLUG}/metadata.xml",
        attributes=attributes(n),
        in_response_to=request_id,
    )


def _error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


def client_process(setup: dict[str, Any], commands: Any, results: Any) -> None:
    from engine.content import load_pack

    pack = load_pack()
    port, code = setup["port"], setup["code"]
    students: dict[int, Student] = {}
    minted: dict[int, str] = {}
    pages: dict[int, str] = {}

    async def prepare(ns: list[int]) -> list[Any]:
        async def one(n: int) -> Any:
            client = Client(port, students.setdefault(n, Student(f"s{n}")))
            try:
                request_id, acs = await ask(client)
                minted[n] = mint(setup, n, request_id, acs)
                return n, None
            except Exception as error:
                return n, _error(error)
            finally:
                client.close()

        return await asyncio.gather(*(one(n) for n in ns))

    async def consume(ns: list[int]) -> list[Any]:
        async def one(n: int) -> Any:
            client = Client(port, students[n])
            try:
                status, location, _ = await client.request(
                    "POST", f"/sso/saml/{SLUG}/acs", {"SAMLResponse": minted.pop(n)}
                )
                if status != 303 or location != "/mes-parcours":
                    raise RuntimeError(f"ACS answered {status} to {location!r}")
                return n, 1, None
            except Exception as error:
                return n, 0, _error(error)
            finally:
                client.close()

        return await asyncio.gather(*(one(n) for n in ns))

    async def land(ns: list[int]) -> list[Any]:
        """Where the ACS sent them: "Mes parcours", signed in."""

        async def one(n: int) -> Any:
            client = Client(port, students[n])
            try:
                status, _, _, _ = await follow(client, "/mes-parcours")
                return n, None if status == 200 else f"Mes parcours answered {status}"
            except Exception as error:
                return n, _error(error)
            finally:
                client.close()

        return await asyncio.gather(*(one(n) for n in ns))

    async def start(ns: list[int]) -> list[Any]:
        async def one(n: int) -> Any:
            client = Client(port, students[n])
            try:
                _, _, page = await client.request("GET", f"/campagnes/{code}")
                token = CSRF.search(page).group(1)  # type: ignore[union-attr]
                status, location, _ = await client.request(
                    "POST", f"/campagnes/{code}/commencer", {"csrf_token": token}
                )
                await follow(client, location)
                status, path, page, _ = await follow(client, f"/campagnes/{code}/evaluation")
                if status != 200 or CHALLENGE.search(page) is None:
                    raise RuntimeError(f"no question at {path} ({status})")
                pages[n] = page
                return n, None
            except Exception as error:
                return n, _error(error)
            finally:
                client.close()

        return await asyncio.gather(*(one(n) for n in ns))

    async def answer_all(ns: list[int]) -> list[Any]:
        async def one(n: int) -> Any:
            student = students[n]
            client = Client(port, student)
            before = len(student.latencies)
            try:
                pages[n] = await answer(client, code, pages[n], pack, ANSWERS)
                error = None
            except Exception as failure:
                error = _error(failure)
            finally:
                client.close()
            return n, student.latencies[before:], error

        return await asyncio.gather(*(one(n) for n in ns if n in pages))

    async def rush(plan: list[tuple[int, float, int]]) -> list[Any]:
        """(student, arrival second, browser): sign in, type the birth date, reach Mes parcours."""
        began = time.perf_counter()

        async def one(n: int, at: float, browser: int) -> Any:
            await asyncio.sleep(max(0.0, at - (time.perf_counter() - began)))
            client = Client(port, Student(f"r{n}-{browser}"))
            try:
                request_id, acs = await ask(client)
                response = mint(setup, n, request_id, acs)
                started = time.perf_counter()
                status, location, _ = await client.request(
                    "POST", f"/sso/saml/{SLUG}/acs", {"SAMLResponse": response}
                )
                acs_ms = (time.perf_counter() - started) * 1000
                if status != 303 or location != "/sso/rattachement":
                    raise RuntimeError(f"ACS answered {status} to {location!r}")
                _, _, page = await client.request("GET", location)
                token = unescape(CSRF.search(page).group(1))  # type: ignore[union-attr]
                born = BIRTHDATE + dt.timedelta(days=n % 300)
                started = time.perf_counter()
                status, location, _ = await client.request(
                    "POST",
                    "/sso/rattachement",
                    {"csrf_token": token, "day": born.day, "month": born.month, "year": born.year},
                )
                match_ms = (time.perf_counter() - started) * 1000
                if status != 303 or location != "/mes-parcours":
                    raise RuntimeError(f"the match answered {status} to {location!r}")
                status, _, _, _ = await follow(client, location)
                if status != 200:
                    raise RuntimeError(f"Mes parcours answered {status}")
                return n, acs_ms, match_ms, None
            except Exception as error:
                return n, None, None, _error(error)
            finally:
                client.close()

        return await asyncio.gather(*(one(*entry) for entry in plan))

    commands_of: dict[str, Callable[[Any], Any]] = {
        "prepare": prepare,
        "consume": consume,
        "land": land,
        "start": start,
        "answer": answer_all,
        "rush": rush,
    }
    while True:
        command, argument = commands.get()
        if command == "stop":
            return
        results.put(asyncio.run(commands_of[command](argument)))


class LoadGenerator:
    """`CLIENTS` load generator processes; each command's items are shared between them."""

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

    def run(self, command: str, shares: list[list[Any]]) -> list[Any]:
        for queue, share in zip(self.commands, shares, strict=True):
            queue.put((command, share))
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


def split(items: list[Any]) -> list[list[Any]]:
    """Shares of items by position (the rush: any process may play anyone)."""
    return [items[n::CLIENTS] for n in range(CLIENTS)]


def owned(students: list[int]) -> list[list[int]]:
    """Shares of known students by the process that keeps their cookies (student % CLIENTS)."""
    return [[n for n in students if n % CLIENTS == k] for k in range(CLIENTS)]


# -- measuring --------------------------------------------------------------------------------------


def measure_logins(
    generator: LoadGenerator, meter: Callable[[], Meter], logins: int, warmup: int
) -> dict[str, Any]:
    """`warmup` known students sign in first, not counted (every worker loads its code);
    then the `logins` others, measured."""
    warm = list(range(logins, logins + warmup))
    generator.run("prepare", owned(warm))
    generator.run("consume", owned(warm))
    students = list(range(logins))  # each known student signs in once, measured
    with meter() as ask_meter:
        prepared = generator.run("prepare", owned(students))
    ready = [n for n, error in prepared if error is None]
    # Each process consumes what it minted: the same shares.
    with meter() as acs_meter:
        consumed = generator.run("consume", owned(ready))
    landed = generator.run("land", owned([n for n, _, error in consumed if error is None]))
    ok = [n for n, error in landed if error is None]
    started = generator.run("start", owned(ok))
    with meter() as answer_meter:
        answered = generator.run("answer", owned([n for n, error in started if error is None]))
    answers = sum(len(lat) for _, lat, _ in answered)
    errors = [e for *_, e in prepared + consumed + landed + started + answered if e is not None]
    posted = [n for n, _, error in consumed if error is None]
    cpu_request = per(ask_meter.used, len(ready))  # each phase by what it did
    cpu_acs = per(acs_meter.used, len(posted))
    cpu_answer = per(answer_meter.used, answers)
    ratio = (
        round(cpu_acs["server"] / cpu_answer["server"], 2)
        if cpu_acs["server"] and cpu_answer["server"]
        else None
    )
    return {
        "logins": len(ok),
        "acs_seconds": round(acs_meter.seconds, 2),
        "logins_per_second": round(len(ok) / acs_meter.seconds, 1) if ok else 0,
        "cpu_ms_per_acs": cpu_acs,
        "cpu_ms_per_authn_request": cpu_request,
        "answers": answers,
        "cpu_ms_per_answer": cpu_answer,
        "login_answer_server_cpu_ratio": ratio,
        "errors": len(errors),
        "first_errors": errors[:5],
    }


def measure_rush(
    generator: LoadGenerator, meter: Callable[[], Meter], first: int, size: int, seconds: float,
    doubles: int,
) -> dict[str, Any]:  # fmt: skip
    rng = random.Random(7)
    plan = [(first + k, seconds * k / size, 0) for k in range(size)]
    for k in rng.sample(range(size), min(doubles, size)):
        n, at, _ = plan[k]
        plan.append((n, at, 1))  # the same student, a second browser, the same moment
    with meter() as rush_meter:
        done = generator.run("rush", split(plan))
    acs = [a for _, a, _, e in done if e is None]
    match = [m for _, _, m, e in done if e is None]
    errors = [e for *_, e in done if e is not None]
    return {
        "students": size,
        "doubles": min(doubles, size),
        "sign_ins": len(plan),
        "seconds": round(rush_meter.seconds, 1),
        "acs_ms": _spread(acs),
        "match_ms": _spread(match),
        "cpu_ms_per_sign_in": per(rush_meter.used, len(plan)),
        "errors": len(errors),
        "first_errors": errors[:5],
    }


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(percentile(values, 0.5), 1),
        "p95": round(percentile(values, 0.95), 1),
        "max": round(max(values), 1),
    }


def check_rush(database_url: str, first: int, size: int) -> dict[str, int]:
    """Accounts, identities and linked learner lines of the rush's students; and every account
    of the database beyond the seeded ones (the school's admin and the known students), so that
    an account made without an identity would show too."""
    engine = create_engine(database_url)
    idos = [f"ido-{n}" for n in range(first, first + size)]
    with engine.connect() as connection:
        identities = connection.execute(
            text(
                "SELECT count(*), count(DISTINCT external_id), count(DISTINCT user_id) "
                "FROM authentication_methods WHERE provider = 'SAML' AND external_id = ANY(:idos)"
            ),
            {"idos": idos},
        ).one()
        linked = connection.execute(
            text(
                "SELECT count(*) FROM learners l JOIN authentication_methods m "
                "ON m.user_id = l.user_id WHERE m.external_id = ANY(:idos)"
            ),
            {"idos": idos},
        ).scalar_one()
        users = connection.execute(text("SELECT count(*) FROM users")).scalar_one()
    engine.dispose()
    return {
        "identities": identities[0],
        "students_with_an_identity": identities[1],
        "accounts": identities[2],
        "learner_lines_linked": linked,
        "duplicates": identities[0] - identities[1],
        "accounts_made": users - 1 - first,
    }


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    login, rush, check = report["login"], report["rush"], report["rush_check"]
    ratio_target = TARGETS["login_answer_cpu_ratio"]
    p95_target = TARGETS["rush_p95_ms"]

    def verdict(ok: bool | None) -> str:
        return "INFO" if ok is None else "PASS" if ok else "MISS"

    def row(figure: str, value: Any, target: str = "—", ok: bool | None = None) -> dict[str, Any]:
        return {"figure": figure, "value": value, "target": target, "verdict": verdict(ok)}

    acs, request, ans = (
        login["cpu_ms_per_acs"],
        login["cpu_ms_per_authn_request"],
        login["cpu_ms_per_answer"],
    )
    ratio = login["login_answer_server_cpu_ratio"]
    size = rush["students"]
    return [
        row("ACS POSTs per second (all at once, responses minted ahead)", login["logins_per_second"]),
        row("server CPU per ACS POST (ms)", acs["server"]),
        row("database CPU per ACS POST (ms)", acs["database"]),
        row("load generator CPU per ACS POST (ms)", acs["clients"]),
        row("server CPU per AuthnRequest, GET login (ms)", request["server"]),
        row("load generator CPU per AuthnRequest and minted response (ms)", request["clients"]),
        row("server CPU per answer (ms)", ans["server"]),
        row("database CPU per answer (ms)", ans["database"]),
        row("server CPU: ACS POST / answer", ratio, f"≤ {ratio_target:g}",
            None if ratio is None else ratio <= ratio_target),
        row("sign-in and answer errors", login["errors"], "0", login["errors"] == 0),
        row(f"rush: {size} students over {rush['seconds']} s, ACS POST p50 (ms)", rush["acs_ms"]["p50"]),
        row("rush: ACS POST p95 (ms)", rush["acs_ms"]["p95"], f"≤ {p95_target:g}",
            None if rush["acs_ms"]["p95"] is None else rush["acs_ms"]["p95"] <= p95_target),
        row("rush: ACS POST max (ms)", rush["acs_ms"]["max"]),
        row("rush: birth-date POST p50 (ms)", rush["match_ms"]["p50"]),
        row("rush: birth-date POST p95 (ms)", rush["match_ms"]["p95"], f"≤ {p95_target:g}",
            None if rush["match_ms"]["p95"] is None else rush["match_ms"]["p95"] <= p95_target),
        row("rush: birth-date POST max (ms)", rush["match_ms"]["max"]),
        row("rush: server CPU per student's 5 requests (ms)", rush["cpu_ms_per_sign_in"]["server"]),
        row("rush errors", rush["errors"], "0", rush["errors"] == 0),
        row(f"rush: accounts ({rush['doubles']} signed in twice at once)", check["accounts"],
            str(size), check["accounts"] == size),
        row("rush: learner lines linked", check["learner_lines_linked"], str(size),
            check["learner_lines_linked"] == size),
        row("rush: duplicate identities", check["duplicates"], "0", check["duplicates"] == 0),
        row("rush: accounts made in the database", check["accounts_made"], str(size),
            check["accounts_made"] == size),
    ]  # fmt: skip


def natural(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return number


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--logins", type=positive, default=200)
    parser.add_argument("--rush", type=positive, default=300)
    parser.add_argument("--rush-seconds", type=float, default=60.0)
    parser.add_argument("--doubles", type=natural, default=15)
    parser.add_argument("--workers", type=positive, default=3, help="gunicorn sync workers")
    args = parser.parse_args()

    from sso import devidp

    started = time.perf_counter()
    private_pem, certificate_pem = devidp.new_key_and_certificate("bench IdP")
    with scratch_database() as database:
        port = free_port()
        public_url = f"http://127.0.0.1:{port}"
        warmup = 3 * args.workers
        code = seed(database.url, public_url, certificate_pem, args.logins + warmup, args.rush)
        options = ["--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
                   "--env", f"PUBLIC_URL={public_url}"]  # fmt: skip
        with gunicorn(database.url, options) as (server, _):
            setup = {
                "port": port,
                "public_url": public_url,
                "code": code,
                "private_pem": private_pem,
                "certificate_pem": certificate_pem,
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

                login = measure_logins(generator, meter, args.logins, warmup)
                server_workers = len(children_of(server.pid))
                rush = measure_rush(
                    generator, meter, args.logins + warmup, args.rush, args.rush_seconds,
                    args.doubles,
                )  # fmt: skip
            finally:
                generator.close()
        check = check_rush(database.url, args.logins + warmup, args.rush)

    report: dict[str, Any] = {
        "workers": args.workers,
        "server_workers": server_workers,
        "warmup_logins": warmup,
        "login": login,
        "rush": rush,
        "rush_check": check,
        "targets": TARGETS,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    report["rows"] = rows(report)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    print(
        f"SAML: {login['logins']} sign-ins of known students and {login['answers']} answers, "
        f"a rush of {args.rush} new students over {args.rush_seconds:g} s; gunicorn "
        f"{args.workers} sync workers; {report['total_seconds']} s in all"
    )
    width = max(len(r["figure"]) for r in report["rows"])
    print(f"{'figure':<{width}}  {'value':>10}  {'target':<8}  verdict")
    for r in report["rows"]:
        value = "—" if r["value"] is None else r["value"]
        print(f"{r['figure']:<{width}}  {value!s:>10}  {r['target']:<8}  {r['verdict']}")
    for errors in (login["first_errors"], rush["first_errors"]):
        if errors:
            print("first errors:", *errors, sep="\n  ")


if __name__ == "__main__":
    main()
