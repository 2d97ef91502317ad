"""E-mail through the job queue, against a real SMTP server on 127.0.0.1 (`tests.smtp_sink`)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.common import free_port
from config.jobs import Job, JobStatus, run_due_jobs
from config.mail import MAIL_JOB, MailNotConfigured, MailRejected, queue_mail, send_mail
from config.settings import ConfigError, Settings
from tests.smtp_sink import SmtpSink, clean_worker_environment, serve

LINK = "http://127.0.0.1:5000/invitation/AbC-123_xyz"
BODY = f"Bonjour,\n\nOuvrez ce lien : {LINK}\n\nÀ bientôt, l’équipe."
SUBJECT = "Invitation à rejoindre Collège Évariste-Galois sur Parcours"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    yield from serve(SmtpSink())


def smtp_settings(port: int, **fields: object) -> Settings:
    values: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_timeout": 5,
    }
    values.update(fields)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def worker_env(monkeypatch):
    """The worker reads its settings from the environment: give it a clean one."""
    return clean_worker_environment(monkeypatch)


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
    for tls_sink in serve(SmtpSink(tls=server_tls, implicit_tls=security == "ssl")):
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
