"""Every setting Parcours reads from the environment, parsed and documented in one place.

`Settings.from_env()` is the only reader of `os.environ` in the project. Each variable is parsed
here and an invalid value raises `ConfigError` naming the variable, so that start-up stops with a
one-line explanation instead of a traceback.

| variable | default | meaning |
|---|---|---|
| `DATABASE_URL` | `sqlite:///instance/parcours.db` | SQLAlchemy URL: `sqlite:///path` (the embedded default, relative paths are taken from the current directory) or `postgresql+psycopg2://user:password@host:port/name` |
| `SECRET_KEY` | a development-only value | signs sessions and CSRF tokens; the default is refused in production and whenever `PUBLIC_URL` is not this machine; at least 32 characters in production |
| `PUBLIC_URL` | `http://127.0.0.1:5000` | absolute base URL the outside world reaches us at (LTI and SAML metadata, links); `https://` in production |
| `PARCOURS_ENV` | `development` | `development` or `production` |
| `PARCOURS_ALLOW_SQLITE` | `0` | `1` lets production run on SQLite (single host only) |
| `TRUSTED_PROXIES` | `0` | number of reverse proxies in front of the app whose `X-Forwarded-*` headers are trusted |
| `LOG_LEVEL` | `INFO` | `DEBUG`, `INFO`, `WARNING` or `ERROR` |
| `LOG_FORMAT` | `text` (`json` in production) | `text` for people, `json` for log collectors |
| `DATABASE_POOL_SIZE` | `5` | connections kept per process (PostgreSQL) |
| `MAX_CONTENT_LENGTH` | `1048576` | largest request body accepted, in bytes |
| `SMTP_HOST` | (none) | mail server that sends e-mails (team invitations); without it, development prints each e-mail on the worker's standard output and production parks e-mail jobs as failed (`parcours jobs retry --kind mail.send` sends them once it is set) |
| `SMTP_PORT` | `587` (`465` with `ssl`, `25` with `none`) | port of `SMTP_HOST` |
| `SMTP_SECURITY` | `starttls` | `starttls`, `ssl` (TLS from the first byte) or `none` (a relay on this machine); production refuses to send a password with `none` to another host |
| `SMTP_USER` / `SMTP_PASSWORD` | (none) | login on `SMTP_HOST`, when it asks for one |
| `SMTP_TIMEOUT` | `10` | seconds to wait for the mail server before retrying later |
| `MAIL_FROM` | `Parcours <ne-pas-repondre@` host of `PUBLIC_URL` `>` | sender of the e-mails |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEV_SECRET_KEY = "dev-only-secret-key-do-not-use-in-production"  # noqa: S105 - refused in production
DEFAULT_DATABASE_URL = "sqlite:///instance/parcours.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"
MIN_PRODUCTION_SECRET_LENGTH = 32

Environment = Literal["development", "production"]
LogFormat = Literal["text", "json"]
SmtpSecurity = Literal["starttls", "ssl", "none"]

_SUPPORTED_DRIVERS = {"sqlite", "sqlite+pysqlite", "postgresql+psycopg2"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SMTP_DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable and is one line."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = field(default=DEV_SECRET_KEY, repr=False)
    public_url: str = DEFAULT_PUBLIC_URL
    env: Environment = "development"
    allow_sqlite: bool = False
    trusted_proxies: int = 0
    log_level: str = "INFO"
    log_format: LogFormat = "text"
    database_pool_size: int = 5
    max_content_length: int = 1024 * 1024
    smtp_host: str = ""
    smtp_port: int = 0  # 0: the usual port of `smtp_security`
    smtp_security: SmtpSecurity = "starttls"
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_timeout: int = 10
    mail_from: str = ""
    testing: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def mail_configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def smtp_port_or_default(self) -> int:
        return self.smtp_port or _SMTP_DEFAULT_PORTS.get(self.smtp_security, 587)

    @property
    def mail_sender(self) -> str:
        host = urlsplit(self.public_url).hostname or "localhost"
        return self.mail_from or f"Parcours <ne-pas-repondre@{host}>"

    def validate(self) -> None:
        parse_database_url(self.database_url)
        _check_public_url(self.public_url)
        if self.env not in ("development", "production"):
            raise ConfigError(
                f"PARCOURS_ENV: expected 'development' or 'production', got {self.env!r}"
            )
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"LOG_FORMAT: expected 'text' or 'json', got {self.log_format!r}")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(
                f"LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}"
            )
        if not self.secret_key:
            raise ConfigError("SECRET_KEY: must not be empty")
        self._validate_mail()
        if self.is_production:
            if self.secret_key == DEV_SECRET_KEY:
                raise ConfigError(
                    "SECRET_KEY: production refuses the default development key; "
                    "set a random value of at least 32 characters"
                )
            if len(self.secret_key) < MIN_PRODUCTION_SECRET_LENGTH:
                raise ConfigError(
                    f"SECRET_KEY: production needs at least {MIN_PRODUCTION_SECRET_LENGTH} characters"
                )
            if not self.https:
                raise ConfigError("PUBLIC_URL: production must be served over https://")
            if self.is_sqlite and not self.allow_sqlite:
                raise ConfigError(
                    "DATABASE_URL: production runs on PostgreSQL; "
                    "set PARCOURS_ALLOW_SQLITE=1 to accept SQLite on a single host"
                )
        elif self.secret_key == DEV_SECRET_KEY and not _is_loopback(self.public_url):
            raise ConfigError(
                "SECRET_KEY: the development key is only accepted while PUBLIC_URL is this "
                "machine (127.0.0.1 or localhost); set a random value"
            )

    def _validate_mail(self) -> None:
        if self.smtp_security not in _SMTP_DEFAULT_PORTS:
            raise ConfigError(
                f"SMTP_SECURITY: expected starttls, ssl or none, got {self.smtp_security!r}"
            )
        if not 0 <= self.smtp_port <= 65535:
            raise ConfigError(f"SMTP_PORT: expected a port number, got {self.smtp_port}")
        if self.smtp_timeout < 1:
            raise ConfigError(f"SMTP_TIMEOUT: must be at least 1, got {self.smtp_timeout}")
        if self.smtp_password and not self.smtp_user:
            raise ConfigError("SMTP_PASSWORD: set SMTP_USER too")
        if self.mail_from and not _is_mail_address(self.mail_from):
            raise ConfigError(
                "MAIL_FROM: expected an address such as 'Parcours <ne-pas-repondre@example.org>'"
            )
        if (
            self.is_production
            and self.smtp_user
            and self.smtp_security == "none"
            and not _is_loopback_host(self.smtp_host)
        ):
            raise ConfigError(
                "SMTP_SECURITY: production refuses to send the SMTP password unencrypted to "
                "another host; use starttls or ssl"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        environment = env.get("PARCOURS_ENV", "development").strip().lower()
        default_format = "json" if environment == "production" else "text"
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL,
            secret_key=env.get("SECRET_KEY", "") or DEV_SECRET_KEY,
            public_url=(env.get("PUBLIC_URL", "").strip() or DEFAULT_PUBLIC_URL).rstrip("/"),
            env=environment,  # type: ignore[arg-type]  # validated in __post_init__
            allow_sqlite=_parse_bool(env, "PARCOURS_ALLOW_SQLITE", default=False),
            trusted_proxies=_parse_int(env, "TRUSTED_PROXIES", default=0, minimum=0),
            log_level=env.get("LOG_LEVEL", "INFO").strip().upper(),
            log_format=env.get("LOG_FORMAT", default_format).strip().lower(),  # type: ignore[arg-type]
            database_pool_size=_parse_int(env, "DATABASE_POOL_SIZE", default=5, minimum=1),
            max_content_length=_parse_int(
                env, "MAX_CONTENT_LENGTH", default=1024 * 1024, minimum=1024
            ),
            smtp_host=env.get("SMTP_HOST", "").strip(),
            smtp_port=_parse_int(env, "SMTP_PORT", default=0, minimum=1),
            smtp_security=env.get("SMTP_SECURITY", "starttls").strip().lower(),  # type: ignore[arg-type]
            smtp_user=env.get("SMTP_USER", "").strip(),
            smtp_password=env.get("SMTP_PASSWORD", ""),
            smtp_timeout=_parse_int(env, "SMTP_TIMEOUT", default=10, minimum=1),
            mail_from=env.get("MAIL_FROM", "").strip(),
        )


def parse_database_url(raw: str) -> URL:
    """Parse and check a database URL; the error never repeats a password."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ConfigError(
            "DATABASE_URL: not a database URL (expected sqlite:///path or "
            "postgresql+psycopg2://user@host:5432/name)"
        ) from None
    if url.drivername in ("postgres", "postgresql"):
        # SQLAlchemy would pick psycopg 3 for a bare "postgresql://"; we ship psycopg2.
        url = url.set(drivername="postgresql+psycopg2")
    if url.drivername not in _SUPPORTED_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL: unsupported database {url.drivername!r} (use sqlite or postgresql+psycopg2)"
        )
    if url.drivername.startswith("postgresql") and not url.database:
        raise ConfigError("DATABASE_URL: the PostgreSQL URL names no database")
    return url


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _is_loopback(url: str) -> bool:
    return _is_loopback_host(urlsplit(url).hostname or "")


def _is_loopback_host(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _is_mail_address(raw: str) -> bool:
    _name, address = parseaddr(raw)
    local, _, domain = address.rpartition("@")
    return bool(local) and "." in domain and not any(c.isspace() for c in address)


def _check_public_url(raw: str) -> None:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"PUBLIC_URL: expected an absolute http(s) URL, got {raw!r}")
    if parts.query or parts.fragment:
        raise ConfigError("PUBLIC_URL: must not carry a query string or fragment")


def _parse_bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}: expected 1 or 0, got {raw!r}")


def _parse_int(env: Mapping[str, str], name: str, *, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value
