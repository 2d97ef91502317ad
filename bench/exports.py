"""Teacher-panel exports and pages on big campaigns, over HTTP against gunicorn on PostgreSQL.

    python -m bench.exports [--json] [--participations 100000] [--analysis 20000]

Creates a throwaway PostgreSQL database next to BENCH_DATABASE_URL (default: the local `test`
database), seeds with set-based SQL (`INSERT … SELECT generate_series`) a school whose campaign
on the 60-skill profile `tp-cycle4` has `--participations` participations (half shared, a quarter
waiting to be shared, a quarter under way), with snapshots frozen as sharing writes them and the
knowledge elements behind them, and a second campaign with `--analysis` shared participations.
It starts one gunicorn worker on 127.0.0.1, signs in as the school's admin and measures:

- the assessment CSV export (twice, then with the skill columns `?acquis=1`): rows per second,
  time to the first byte and to the first participant row, size, and the growth of the serving
  worker's peak resident memory (VmHWM, reset through /proc/<pid>/clear_refs before each request;
  when the kernel refuses, the peak since start is compared with the resident size before);
- the collective results page and the analysis page of the second campaign: status, time and the
  worker's memory growth.

Targets: export ≥ 20,000 rows/s, first byte ≤ 1 s, memory growth ≤ 100 MB; each page ≤ 2 s with
memory growth ≤ 100 MB. The export with the optional skill columns is measured, not judged.
Figures are printed, never asserted. Only 127.0.0.1 is contacted, and the database is dropped at
the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import re
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import create_engine, select, text

from bench.common import gunicorn, school_with_admin, scratch_database

PASSWORD = secrets.token_urlsafe(12) + "-Aa1"  # this run only
ADMIN_EMAIL = "prof@banc.example"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TEMPLATES = 400  # distinct simulated students whose results the participants share
TARGETS = {
    "export_rows_per_second": 20_000,
    "export_first_byte_s": 1.0,
    "memory_growth_mb": 100,
    "page_seconds": 2.0,
}


# -- seeding ----------------------------------------------------------------------------------------


def simulated_results(pack: Any, skills: list[Any], k: int) -> dict[str, Any]:
    """One simulated student: which campaign skills they validated or failed, and the snapshot
    sharing would freeze (computed by the engine, as `journey.share` does)."""
    from engine.knowledge import Knowledge, Source, Status
    from engine.scoring import campaign_result, profile

    rng = random.Random(k)
    ability = rng.uniform(0.5, 6.5)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    known: dict[str, Knowledge] = {}
    for skill in skills:
        if rng.random() < 0.12:
            continue  # not tested: the test ended before reaching it
        chance = 1 / (1 + 2.718 ** (skill.level - ability))
        status = Status.VALIDATED if rng.random() < chance else Status.INVALIDATED
        pix = skill.pix_value if status is Status.VALIDATED else 0.0
        known[skill.id] = Knowledge(skill.id, status, Source.DIRECT, now, pix)
    result = campaign_result(pack, skills, known)
    scores = profile(pack, known)
    snapshot = result.as_dict()
    snapshot["profile"] = {
        "pix": scores.pix,
        "certifiable": scores.is_certifiable,
        "certifiable_competences": scores.certifiable_competences,
        "competences": {
            c.competence_id: {"pix": c.pix, "level": c.level} for c in scores.competences
        },
    }
    return {
        "k": k,
        "results": json.dumps(snapshot),
        "mastery": round(result.mastery_rate, 4),
        "validated": result.overall.validated,
        "pix": scores.pix,
        "elements": [
            (k, s.id, s.tube_id, s.competence_id, e.status.value, round(e.earned_pix, 3))
            for s in skills
            if (e := known.get(s.id)) is not None
        ],
    }


def seed(database_url: str, participations: int, analysis: int) -> dict[str, int]:
    """Migrate, import the content, create the school, its admin and the two campaigns through
    the services, then the participants in bulk. Returns the campaign ids."""
    from campaigns.accounts import users
    from campaigns.journey import services as journey
    from campaigns.orga import campaign_admin
    from campaigns.shared.content import import_pack
    from campaigns.shared.models import CampaignType, TargetProfile
    from config.db import Database, utcnow
    from config.migrations import upgrade
    from config.settings import Settings
    from engine.content import BUNDLED_PACK

    database = Database(Settings(database_url=database_url))
    upgrade(database)
    with database.session() as session, session.begin():
        import_pack(session, BUNDLED_PACK)
        organization, admin = school_with_admin(
            session, name="Lycée du Banc d’essai", uai="0759999X", admin_email=ADMIN_EMAIL
        )
        users.set_password(session, admin, PASSWORD)
        admin.cgu_accepted_at = utcnow()
        profile = session.scalars(
            select(TargetProfile).where(TargetProfile.content_key == "tp-cycle4")
        ).one()
        campaigns = {}
        for key, name in (("export", "Export 100 000"), ("analysis", "Analyse 20 000")):
            campaign = campaign_admin.create_campaign(
                session, organization=organization, creator=admin, name=name,
                type=CampaignType.ASSESSMENT, target_profile=profile, title=name,
                external_id_label="Numéro élève",
            )  # fmt: skip
            session.flush()
            campaigns[key] = campaign.id
        content = journey.campaign_content(session, campaign)
        pack = content.pack
        skills = [s for s in pack.skills if s.id in content.index.skills]
        organization_id = organization.id
    templates = [simulated_results(pack, skills, k) for k in range(TEMPLATES)]
    with database.engine.begin() as connection:
        run = connection.exec_driver_sql
        run(
            "CREATE TEMP TABLE bench_templates (k int PRIMARY KEY, results jsonb,"
            " mastery numeric(5,4), validated int, pix int)"
        )
        run(
            "CREATE TEMP TABLE bench_elements (k int, skill_id text, tube_id text,"
            " competence_id text, status text, pix numeric(6,3))"
        )
        connection.execute(
            text(
                "INSERT INTO bench_templates VALUES"
                " (:k, CAST(:results AS jsonb), :mastery, :validated, :pix)"
            ),
            [
                {key: t[key] for key in ("k", "results", "mastery", "validated", "pix")}
                for t in templates
            ],
        )
        connection.execute(
            text("INSERT INTO bench_elements VALUES (:k, :s, :t, :c, :status, :pix)"),
            [
                dict(zip(("k", "s", "t", "c", "status", "pix"), e, strict=True))
                for t in templates
                for e in t["elements"]
            ],
        )
        # Participant n: a pupil with a learner record; n % 4 in (0, 1) shared, 2 waiting to
        # share, 3 under way. Names are scattered so that the sort has work to do.
        run(
            "INSERT INTO users (first_name, last_name, email, locale, created_at, updated_at)"
            " SELECT 'Prénom' || n, initcap(substr(md5(n::text), 1, 10)), 'eleve.' || n ||"
            " '@banc.example', 'fr', now(), now() FROM generate_series(1, %(count)s) AS n",
            {"count": participations},
        )
        run(
            "INSERT INTO learners (organization_id, user_id, first_name, last_name, division,"
            " created_at, updated_at) SELECT %(org)s, u.id, u.first_name, u.last_name,"
            " (3 + u.id %% 3) || 'e ' || chr(65 + (u.id %% 5)), now(), now() FROM users u"
            " WHERE u.email LIKE 'eleve.%%'",
            {"org": organization_id},
        )
        run(
            "CREATE TEMP TABLE bench_pupils AS SELECT u.id AS user_id, l.id AS learner_id,"
            " split_part(split_part(u.email, '@', 1), '.', 2)::int AS n"
            " FROM users u JOIN learners l ON l.user_id = u.id WHERE u.email LIKE %(pattern)s",
            {"pattern": "eleve.%"},
        )
        run(
            "INSERT INTO participations (campaign_id, user_id, learner_id, participant_external_id,"
            " status, created_at, shared_at, mastery_rate, validated_skills_count, pix_score,"
            " shared_results)"
            " SELECT %(campaign)s, p.user_id, p.learner_id, 'E' || lpad(p.n::text, 7, '0'),"
            " CASE WHEN p.n %% 4 < 2 THEN 'SHARED' WHEN p.n %% 4 = 2 THEN 'TO_SHARE'"
            " ELSE 'STARTED' END,"
            " timestamptz '2026-09-01 08:00+02' + p.n * interval '37 seconds',"
            " CASE WHEN p.n %% 4 < 2 THEN timestamptz '2026-09-01 08:45+02'"
            " + p.n * interval '37 seconds' END,"
            " CASE WHEN p.n %% 4 < 2 THEN t.mastery END,"
            " CASE WHEN p.n %% 4 < 2 THEN t.validated END,"
            " CASE WHEN p.n %% 4 < 2 THEN t.pix END,"
            " CASE WHEN p.n %% 4 < 2 THEN t.results END"
            " FROM bench_pupils p JOIN bench_templates t ON t.k = p.n %% %(templates)s",
            {"campaign": campaigns["export"], "templates": TEMPLATES},
        )
        # Their knowledge: everything behind the snapshot for those who shared or finished,
        # a third of it for those under way; recorded before the share.
        run(
            "INSERT INTO knowledge_elements (user_id, skill_id, tube_id, competence_id, status,"
            " source, earned_pix, created_at)"
            " SELECT p.user_id, e.skill_id, e.tube_id, e.competence_id, e.status, 'direct',"
            " e.pix, timestamptz '2026-09-01 08:30+02' + p.n * interval '37 seconds'"
            " FROM bench_pupils p JOIN bench_elements e ON e.k = p.n %% %(templates)s"
            " WHERE p.n %% 4 < 3 OR abs(hashtext(e.skill_id)) %% 3 = 0"
            # A student's elements are recorded during their test, so close together on disk.
            " ORDER BY p.n",
            {"templates": TEMPLATES},
        )
        # The analysis campaign: `analysis` pupils among those who shared, sharing again.
        run(
            "INSERT INTO participations (campaign_id, user_id, learner_id, status, created_at,"
            " shared_at, mastery_rate, validated_skills_count, pix_score, shared_results)"
            " SELECT %(campaign)s, user_id, learner_id, status, created_at + interval '1 day',"
            " shared_at + interval '1 day', mastery_rate, validated_skills_count, pix_score,"
            " shared_results FROM participations WHERE campaign_id = %(source)s"
            " AND status = 'SHARED' ORDER BY id LIMIT %(count)s",
            {"campaign": campaigns["analysis"], "source": campaigns["export"], "count": analysis},
        )
    database.dispose()
    # What autovacuum does after bulk inserts (PostgreSQL >= 13): statistics for the planner and
    # the visibility map that lets the reports answer from the knowledge index alone.
    maintenance = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with maintenance.connect() as connection:
        connection.execute(text("VACUUM (ANALYZE)"))
    maintenance.dispose()
    return campaigns


# -- measuring --------------------------------------------------------------------------------------


class Browser:
    """Keeps the session cookie; one connection per request (nothing to reuse while streaming)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def open(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        return connection, response

    def fetch(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, bytes]:
        connection, response = self.open(method, path, form)
        body = response.read()
        connection.close()
        return response.status, response.getheader("Location") or "", body

    def sign_in(self, email: str, password: str) -> None:
        _, _, page = self.fetch("GET", "/connexion")
        token = CSRF.search(page.decode()).group(1)  # type: ignore[union-attr]
        status, _, _ = self.fetch(
            "POST", "/connexion", {"login": email, "password": password, "csrf_token": token}
        )
        if status != 302:
            raise RuntimeError(f"sign-in answered {status}")


def worker_pid(master: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == master:
                return int(entry.name)
    raise RuntimeError("no gunicorn worker")


def memory_kb(pid: int) -> dict[str, int]:
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0])
    return figures


def reset_peak(pid: int) -> bool:
    """Reset the worker's peak resident size (Linux: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (0 for those gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class Probe:
    """The worker's memory peak and the CPU time of the worker and of its database sessions
    (the machine may be shared: CPU time tells the cost apart from the waiting)."""

    def __init__(self, pid: int, backends: Callable[[], list[int]]) -> None:
        self.pid = pid
        self.backends = backends

    def __enter__(self) -> Probe:
        self.reset = reset_peak(self.pid)
        self.before = memory_kb(self.pid)
        self.worker_before = cpu_seconds([self.pid])
        self.database_before = {pid: cpu_seconds([pid]) for pid in self.backends()}
        return self

    def __exit__(self, *_exc: object) -> None:
        self.after = memory_kb(self.pid)
        worker = cpu_seconds([self.pid]) - self.worker_before
        database = sum(  # sessions opened meanwhile started from zero
            cpu_seconds([pid]) - self.database_before.get(pid, 0.0) for pid in self.backends()
        )
        self.cpu = (round(worker, 2), round(database, 2))

    @property
    def growth_mb(self) -> float:
        return round((self.after["VmHWM"] - self.before["VmRSS"]) / 1024, 1)


def measure_export(
    browser: Browser, pid: int, backends: Callable[[], list[int]], path: str
) -> dict[str, Any]:
    with Probe(pid, backends) as probe:
        start = time.perf_counter()
        connection, response = browser.open("GET", path)
        first = response.read1(65536)
        first_byte = time.perf_counter() - start
        size, newlines, first_row = len(first), first.count(b"\n"), None
        if newlines > 1:
            first_row = first_byte
        while chunk := response.read1(65536):
            size += len(chunk)
            newlines += chunk.count(b"\n")
            if first_row is None and newlines > 1:
                first_row = time.perf_counter() - start
        elapsed = time.perf_counter() - start
        connection.close()
    rows = max(0, newlines - 1)
    return {
        "path": path,
        "status": response.status,
        "rows": rows,
        "megabytes": round(size / 1e6, 1),
        "seconds": round(elapsed, 2),
        "rows_per_second": round(rows / elapsed) if elapsed else None,
        "first_byte_s": round(first_byte, 3),
        "first_row_s": round(first_row, 3) if first_row is not None else None,
        "cpu_seconds": {"worker": probe.cpu[0], "database": probe.cpu[1]},
        "rows_per_cpu_second": round(rows / sum(probe.cpu)) if sum(probe.cpu) else None,
        "memory_growth_mb": probe.growth_mb,
        "peak_reset": probe.reset,
    }


def measure_page(
    browser: Browser, pid: int, backends: Callable[[], list[int]], path: str
) -> dict[str, Any]:
    with Probe(pid, backends) as probe:
        start = time.perf_counter()
        status, _, body = browser.fetch("GET", path)
        elapsed = time.perf_counter() - start
    return {
        "path": path,
        "status": status,
        "seconds": round(elapsed, 3),
        "kilobytes": round(len(body) / 1000, 1),
        "cpu_seconds": {"worker": probe.cpu[0], "database": probe.cpu[1]},
        "memory_growth_mb": probe.growth_mb,
        "peak_reset": probe.reset,
    }


def verdicts(report: dict[str, Any]) -> list[str]:
    lines = []
    for run in report["exports"]:
        ok = (
            run["status"] == 200
            and (run["rows_per_second"] or 0) >= TARGETS["export_rows_per_second"]
            and run["first_byte_s"] <= TARGETS["export_first_byte_s"]
            and run["memory_growth_mb"] <= TARGETS["memory_growth_mb"]
        )
        verdict = "OK  " if ok else "MISS"
        if "acquis=1" in run["path"]:
            verdict = "INFO"  # the optional skill columns: measured, no target
        lines.append(
            f"{verdict} export {run['path']}: {run['rows']} rows in "
            f"{run['seconds']} s = {run['rows_per_second']} rows/s, first byte "
            f"{run['first_byte_s']} s, first row {run['first_row_s']} s, "
            f"{run['megabytes']} MB, worker memory +{run['memory_growth_mb']} MB; CPU "
            f"{run['cpu_seconds']['worker']} s worker + {run['cpu_seconds']['database']} s "
            f"database = {run['rows_per_cpu_second']} rows per CPU second"
        )
    for page in report["pages"]:
        ok = (
            page["status"] == 200
            and page["seconds"] <= TARGETS["page_seconds"]
            and page["memory_growth_mb"] <= TARGETS["memory_growth_mb"]
        )
        lines.append(
            f"{'OK  ' if ok else 'MISS'} page {page['path']}: HTTP {page['status']} in "
            f"{page['seconds']} s, {page['kilobytes']} kB, worker memory "
            f"+{page['memory_growth_mb']} MB; CPU {page['cpu_seconds']['worker']} s worker + "
            f"{page['cpu_seconds']['database']} s database"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--participations", type=int, default=100_000)
    parser.add_argument("--analysis", type=int, default=20_000)
    args = parser.parse_args()
    if args.analysis > args.participations // 2 + 1:
        sys.exit("--analysis takes pupils among those who shared: at most half the participations")

    with scratch_database() as database:
        started = time.perf_counter()
        campaigns = seed(database.url, args.participations, args.analysis)
        seed_seconds = time.perf_counter() - started
        options = ["--workers", "1", "--timeout", "600"]
        with gunicorn(database.url, options) as (server, port):
            browser = Browser(port)
            browser.sign_in(ADMIN_EMAIL, PASSWORD)
            pid = worker_pid(server.pid)
            browser.fetch("GET", "/orga/campagnes")  # warm the worker: templates, content

            def backends() -> list[int]:  # the worker's database sessions (its pool may grow)
                with database.admin.connect() as connection:
                    return list(
                        connection.execute(
                            text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                            {"name": database.name},
                        ).scalars()
                    )

            export = f"/orga/campagnes/{campaigns['export']}/export.csv"
            exports = [
                measure_export(browser, pid, backends, export),
                measure_export(browser, pid, backends, export),
                measure_export(browser, pid, backends, export + "?acquis=1"),
            ]
            analysis = campaigns["analysis"]
            pages = []
            for path in (
                f"/orga/campagnes/{analysis}/resultats",
                f"/orga/campagnes/{analysis}/analyse",
            ):
                pages += [
                    measure_page(browser, pid, backends, path),
                    measure_page(browser, pid, backends, path),
                ]

    report = {
        "participations": args.participations,
        "analysis_participations": args.analysis,
        "seed_seconds": round(seed_seconds, 1),
        "targets": TARGETS,
        "exports": exports,
        "pages": pages,
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    print(
        f"{args.participations} participations (export campaign), {args.analysis} shared "
        f"(analysis campaign), seeded in {seed_seconds:.1f} s; gunicorn, 1 sync worker"
    )
    print(*verdicts(report), sep="\n")


if __name__ == "__main__":
    main()
