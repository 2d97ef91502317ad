"""E-mail through the job queue, against a real SMTP server on 127.0.0.1 (a small sink below)."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import ipaddress
import smtplib
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from config.jobs import Job, JobStatus, run_due_jobs
from config.mail import MAIL_JOB, MailNotConfigured, MailRejected, queue_mail, send_mail
from config.settings import ConfigError, Settings

LINK = "http://127.0.0.1:5000/invitation/AbC-123_xyz"
BODY = f"Bonjour,\n\nOuvrez ce lien : {LINK}\n\nÀ bientôt, l’équipe."
SUBJECT = "Invitation à rejoindre Collège Évariste-Galois sur Parcours"


# -- a tiny SMTP server -----------------------------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        data = self.data.replace(b"\r\n", b"\n")
        return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class SmtpSink:
    """Speaks enough SMTP for smtplib: EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    mail_reply: str | None = None  # e.g. "451 try later" to refuse MAIL FROM
    rcpt_reply: str | None = None  # e.g. "550 no such user"
    tls: ssl.SSLContext | None = None  # offer STARTTLS with this context
    implicit_tls: bool = False  # TLS from the first byte (SMTPS)
    tls_used: list[bool] = field(default_factory=list)


class _Session(socketserver.StreamRequestHandler):
    server: _Server

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def setup(self) -> None:
        sink = self.server.sink
        if sink.implicit_tls:
            assert sink.tls is not None
            self.request = sink.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def handle(self) -> None:
        sink = self.server.sink
        secure = sink.implicit_tls
        self.reply("220 sink ESMTP")
        sender, recipients = "", []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, argument = command.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                lines = ["250-sink", "250-8BITMIME", "250-AUTH PLAIN"]
                if sink.tls is not None and not secure:
                    lines.append("250-STARTTLS")
                lines.append("250 SMTPUTF8")
                self.reply("\r\n".join(lines))
            elif verb == "HELO":
                self.reply("250 sink")
            elif verb == "STARTTLS" and sink.tls is not None:
                self.reply("220 go ahead")
                self.request = sink.tls.wrap_socket(self.request, server_side=True)
                self.rfile = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb")
                secure = True
            elif verb == "AUTH":
                _mechanism, _, encoded = argument.partition(" ")
                _zid, user, password = base64.b64decode(encoded).decode().split("\0")
                sink.logins.append((user, password))
                self.reply("235 ok" if password == "bon-mot-de-passe" else "535 bad credentials")
            elif verb == "MAIL":
                if sink.mail_reply:
                    self.reply(sink.mail_reply)
                    continue
                sender, recipients = argument.split(":", 1)[1].split()[0].strip("<>"), []
                self.reply("250 ok")
            elif verb == "RCPT":
                if sink.rcpt_reply:
                    self.reply(sink.rcpt_reply)
                    continue
                recipients.append(argument.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                chunks = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    chunks.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                sink.messages.append(Received(sender, recipients, b"".join(chunks)))
                sink.tls_used.append(secure)
                self.reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 ok")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: SmtpSink


def _serve(sink: SmtpSink) -> Iterator[SmtpSink]:
    server = _Server((sink.host, 0), _Session)
    server.sink = sink
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    yield from _serve(SmtpSink())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def smtp_settings(port: int, **fields: object) -> Settings:
    values: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_timeout": 5,
    }
    values.update(fields)
    return Settings(**values)  # type: ignore[arg-type]


MAIL_VARIABLES = (
    "PARCOURS_ENV",
    "DATABASE_URL",
    "SECRET_KEY",
    "PUBLIC_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_SECURITY",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "SMTP_TIMEOUT",
    "MAIL_FROM",
)


@pytest.fixture
def worker_env(monkeypatch):
    """The worker reads its settings from the environment: give it a clean one."""
    for name in MAIL_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def use(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return use


def queued(db_session, **payload) -> Job:
    job = queue_mail(
        db_session,
        to=payload.get("to", "nouvelle@example.org"),
        subject=payload.get("subject", SUBJECT),
        body=payload.get("body", BODY),
    )
    db_session.commit()
    return job


def reloaded(db_session, job: Job) -> Job:
    db_session.expire_all()
    found = db_session.get(Job, job.id)
    assert found is not None
    return found


# -- send_mail ------------------------------------------------------------------------------------


def test_a_message_reaches_the_smtp_server_in_french_and_intact(sink):
    send_mail(
        smtp_settings(sink.port, mail_from="Parcours <ne-pas-repondre@parcours.example.org>"),
        "nouvelle@example.org",
        SUBJECT,
        BODY,
    )
    [received] = sink.messages
    assert received.sender == "ne-pas-repondre@parcours.example.org"
    assert received.recipients == ["nouvelle@example.org"]
    assert received.data.isascii()  # 7-bit clean for any relay
    message = received.message
    assert message["Subject"] == SUBJECT
    assert message["To"] == "nouvelle@example.org"
    assert message["Message-ID"].endswith("@parcours.example.org>")
    assert message.get_content().rstrip("\n") == BODY
    assert LINK in message.get_content()
    assert sink.logins == []  # no SMTP_USER: no login


def test_the_login_is_used_when_configured(sink):
    settings = smtp_settings(sink.port, smtp_user="parcours", smtp_password="bon-mot-de-passe")
    send_mail(settings, "a@example.org", "Objet", "Corps")
    assert sink.logins == [("parcours", "bon-mot-de-passe")]
    assert len(sink.messages) == 1
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send_mail(
            smtp_settings(sink.port, smtp_user="parcours", smtp_password="faux"),
            "a@example.org",
            "Objet",
            "Corps",
        )
    assert len(sink.messages) == 1


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made for this test."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_is_used_and_the_certificate_checked(security, tmp_path, monkeypatch):
    pytest.importorskip("cryptography")
    cert_file, key_file = _certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_file, key_file)
    for tls_sink in _serve(SmtpSink(tls=server_tls, implicit_tls=security == "ssl")):
        settings = smtp_settings(tls_sink.port, smtp_security=security)
        # Not trusted yet: the message is not sent to a server that cannot prove who it is.
        with pytest.raises(ssl.SSLCertVerificationError):
            send_mail(settings, "a@example.org", "Objet", "Corps")
        assert tls_sink.messages == []
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # trusted like a real CA
        send_mail(settings, "a@example.org", "Objet", "Corps")
        assert len(tls_sink.messages) == 1 and tls_sink.tls_used == [True]


def test_development_without_smtp_prints_the_message(capsys):
    send_mail(Settings(), "nouvelle@example.org", SUBJECT, BODY)
    printed = capsys.readouterr().out
    assert "To: nouvelle@example.org" in printed
    assert f"Subject: {SUBJECT}" in printed
    assert LINK in printed


def test_production_without_smtp_refuses_clearly():
    settings = Settings(
        env="production",
        secret_key="x" * 40,
        public_url="https://parcours.example.org",
        database_url="postgresql+psycopg2://u@127.0.0.1:5432/p",
    )
    with pytest.raises(MailNotConfigured, match="SMTP_HOST"):
        send_mail(settings, "a@example.org", "Objet", "Corps")


# -- the mail.send job ----------------------------------------------------------------------------


def test_the_job_delivers_through_the_configured_server(
    sink, worker_env, db_session, bound_database
):
    worker_env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(sink.port), SMTP_SECURITY="none")
    job = queued(db_session)
    assert job.kind == MAIL_JOB and job.payload["to"] == "nouvelle@example.org"
    report = run_due_jobs(bound_database)
    assert report.done == 1
    assert reloaded(db_session, job).status is JobStatus.DONE
    [received] = sink.messages
    assert received.recipients == ["nouvelle@example.org"]
    assert LINK in received.message.get_content()


def test_an_unreachable_server_means_retry_later(worker_env, db_session, bound_database):
    worker_env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(free_port()), SMTP_SECURITY="none")
    job = queued(db_session)
    assert run_due_jobs(bound_database).retried == 1
    waiting = reloaded(db_session, job)
    assert waiting.status is JobStatus.PENDING and waiting.run_at > dt.datetime.now(dt.UTC)
    assert "mail server 127.0.0.1" in waiting.last_error
    assert LINK not in waiting.last_error and "invitation" not in waiting.last_error


def test_a_temporary_refusal_means_retry_later(sink, worker_env, db_session, bound_database):
    sink.mail_reply = "451 4.3.0 try again later"
    worker_env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(sink.port), SMTP_SECURITY="none")
    job = queued(db_session)
    assert run_due_jobs(bound_database).retried == 1
    assert "451" in reloaded(db_session, job).last_error

    sink.mail_reply = None
    waiting = reloaded(db_session, job)
    waiting.run_at = dt.datetime.now(dt.UTC)
    db_session.commit()
    assert run_due_jobs(bound_database).done == 1
    assert len(sink.messages) == 1


def test_a_rejected_recipient_is_parked_at_once(sink, worker_env, db_session, bound_database):
    sink.rcpt_reply = "550 5.1.1 no such user"
    worker_env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(sink.port), SMTP_SECURITY="none")
    job = queued(db_session)
    assert run_due_jobs(bound_database).failed == 1
    parked = reloaded(db_session, job)
    assert parked.status is JobStatus.FAILED
    assert "refused the recipient (550)" in parked.last_error
    assert "nouvelle@example.org" not in parked.last_error


def test_the_job_prints_in_development_without_smtp(worker_env, db_session, bound_database, capsys):
    worker_env()
    job = queued(db_session)
    assert run_due_jobs(bound_database).done == 1
    assert reloaded(db_session, job).status is JobStatus.DONE
    printed = capsys.readouterr().out
    assert "To: nouvelle@example.org" in printed and LINK in printed


def test_the_job_fails_for_good_in_production_without_smtp(worker_env, db_session, bound_database):
    worker_env(
        PARCOURS_ENV="production",
        SECRET_KEY="x" * 40,
        PUBLIC_URL="https://parcours.example.org",
        DATABASE_URL="postgresql+psycopg2://u@127.0.0.1:5432/p",
    )
    job = queued(db_session)
    assert run_due_jobs(bound_database).failed == 1
    parked = reloaded(db_session, job)
    assert parked.status is JobStatus.FAILED and "SMTP_HOST is not set" in parked.last_error
    assert parked.payload["body"] == BODY  # kept: `parcours jobs retry` sends it later


def test_a_newer_message_under_the_same_key_replaces_the_waiting_one(db_session):
    first = queue_mail(db_session, to="a@example.org", subject="1", body="old", dedupe_key="k")
    second = queue_mail(db_session, to="a@example.org", subject="2", body="new", dedupe_key="k")
    assert first.id == second.id
    jobs = db_session.scalars(select(Job).where(Job.kind == MAIL_JOB)).all()
    assert [j.payload["body"] for j in jobs] == ["new"]


def test_rejected_is_a_permanent_failure():
    from config.jobs import PermanentFailure

    assert issubclass(MailRejected, PermanentFailure)
    assert issubclass(MailNotConfigured, PermanentFailure)


# -- settings -------------------------------------------------------------------------------------


def test_smtp_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "SMTP_HOST": "smtp.example.org",
            "SMTP_SECURITY": "SSL",
            "SMTP_USER": "parcours",
            "SMTP_PASSWORD": "secret",
            "SMTP_TIMEOUT": "20",
            "MAIL_FROM": "Parcours <bonjour@example.org>",
        }
    )
    assert settings.mail_configured and settings.smtp_security == "ssl"
    assert settings.smtp_port_or_default == 465
    assert settings.smtp_timeout == 20 and settings.mail_sender == "Parcours <bonjour@example.org>"
    assert "secret" not in repr(settings)
    assert Settings.from_env({"SMTP_HOST": "h"}).smtp_port_or_default == 587
    assert Settings.from_env({"SMTP_HOST": "h", "SMTP_PORT": "2525"}).smtp_port_or_default == 2525
    assert Settings.from_env({}).mail_sender == "Parcours <ne-pas-repondre@127.0.0.1>"
    assert not Settings.from_env({}).mail_configured


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"SMTP_SECURITY": "tls"}, "SMTP_SECURITY"),
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
        ({"SMTP_PORT": "70000"}, "SMTP_PORT"),
        ({"SMTP_TIMEOUT": "0"}, "SMTP_TIMEOUT"),
        ({"SMTP_PASSWORD": "secret"}, "SMTP_PASSWORD"),
        ({"MAIL_FROM": "pas une adresse"}, "MAIL_FROM"),
        (
            {
                "PARCOURS_ENV": "production",
                "SECRET_KEY": "x" * 40,
                "PUBLIC_URL": "https://parcours.example.org",
                "DATABASE_URL": "postgresql+psycopg2://u@db:5432/p",
                "SMTP_HOST": "smtp.example.org",
                "SMTP_SECURITY": "none",
                "SMTP_USER": "parcours",
                "SMTP_PASSWORD": "secret",
            },
            "SMTP_SECURITY",
        ),
    ],
)
def test_bad_smtp_configuration_names_the_variable(environ, variable):
    with pytest.raises(ConfigError) as error:
        Settings.from_env(environ)
    message = str(error.value)
    assert message.startswith(f"{variable}:") and "\n" not in message
    assert "secret" not in message
