"""What the benchmarks share: percentiles, a throwaway PostgreSQL database, gunicorn on
127.0.0.1. Nothing here contacts anything but this machine."""

from __future__ import annotations

import math
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class ScratchDatabase:
    url: str  # with its password, for the server and the seeding
    name: str
    admin: Engine  # on the server's maintenance database, in autocommit


@contextmanager
def scratch_database() -> Iterator[ScratchDatabase]:
    """A new PostgreSQL database next to BENCH_DATABASE_URL (default: the local `test`
    database), dropped at the end whatever happens."""
    base = make_url(
        os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    )
    if base.host not in ("127.0.0.1", "localhost"):
        sys.exit("BENCH_DATABASE_URL must point at this machine")
    name = f"parcours_bench_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ScratchDatabase(
            base.set(database=name).render_as_string(hide_password=False), name, admin
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gunicorn(
    database_url: str, options: list[str], app: str = "wsgi:app", **environment: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """gunicorn serving Parcours (`app`) on a free port of 127.0.0.1 (the master process, the
    port), ready to answer; stopped at the end."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", *options, "--bind", f"127.0.0.1:{port}",
               "--no-control-socket", "--log-level", "warning", app]  # fmt: skip
    with _serving(command, port, database_url, environment) as server:
        yield server, port


@contextmanager
def granian(
    database_url: str, options: list[str], app: str = "wsgi:app", **environment: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Granian (a WSGI server keeping connections alive) serving Parcours like `gunicorn`."""
    port = free_port()
    command = [sys.executable, "-m", "granian", "--interface", "wsgi", *options,
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
               "--no-ws", app]  # fmt: skip
    with _serving(command, port, database_url, environment) as server:
        yield server, port


SERVERS = {"gunicorn": gunicorn, "granian": granian}


@contextmanager
def _serving(
    command: list[str], port: int, database_url: str, environment: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        PARCOURS_ENV="development",
        PUBLIC_URL="http://127.0.0.1:5000",
        SECRET_KEY=secrets.token_urlsafe(48),
        LOG_LEVEL="WARNING",
        **environment,
    )
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        for _ in range(150):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


def school_with_admin(session, *, name: str, uai: str, admin_email: str):  # type: ignore[no-untyped-def]
    """A school and its admin (a proven address, as after accepting the invitation that
    `parcours org create` sends): (organization, admin)."""
    from campaigns.accounts import users
    from campaigns.shared import organizations
    from campaigns.shared.models import Membership, MembershipRole, OrganizationType
    from config.db import utcnow

    organization = organizations.create_organization(
        session, name=name, type=OrganizationType.SCO, uai=uai
    )
    admin = users.create_user(session, first_name="Prof", last_name="Banc", email=admin_email)
    admin.email_verified_at = utcnow()
    session.add(
        Membership(organization_id=organization.id, user_id=admin.id, role=MembershipRole.ADMIN)
    )
    session.flush()
    return organization, admin
