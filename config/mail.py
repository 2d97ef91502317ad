"""Sending e-mail: through the durable job queue, over SMTP.

Nobody sends an e-mail from a web request: the caller queues a `mail.send` job in its own
transaction (`queue_mail`), so the e-mail exists if and only if the change that asked for it
committed (the outbox), and `parcours worker` delivers it. An unreachable mail server only
delays it (`RetryLater`, with the queue's back-off); an address the server rejects for good
parks it at once (`PermanentFailure`).

Without `SMTP_HOST`:
- in development the worker prints each e-mail (recipient, subject, body with its links) on its
  standard output, so that a developer can follow an invitation link without a mail server;
- in production the job fails for good with an error naming `SMTP_HOST`. Start-up is not
  refused: a deployment whose teachers all come through the LMS or the ENT never sends e-mail,
  and a missing mail server must not take the whole site down. The parked jobs are kept (with
  their links) and `parcours jobs retry --kind mail.send` sends them once SMTP is configured.

The payload holds the whole message, links included: that is what makes the outbox durable. So
neither the payload nor the body is ever logged here; errors name the server, not the message.
"""

from __future__ import annotations

import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, TextIO

from sqlalchemy.orm import Session

from config.jobs import Job, PermanentFailure, RetryLater, enqueue, job_handler
from config.settings import Settings

MAIL_JOB = "mail.send"
MAIL_MAX_ATTEMPTS = 12  # about 7 hours of retries, then parked (see config.jobs)


class MailNotConfigured(PermanentFailure):
    """Production has no mail server: retrying cannot help until an operator sets one."""


class MailRejected(PermanentFailure):
    """The mail server refused the recipient or the message for good (5xx)."""


def queue_mail(
    session: Session, *, to: str, subject: str, body: str, dedupe_key: str | None = None
) -> Job:
    """Queue an e-mail in the caller's transaction. With `dedupe_key`, an e-mail still waiting
    under that key is replaced by this one (a renewed invitation sends only its newest link)."""
    return enqueue(
        session,
        MAIL_JOB,
        {"to": to, "subject": subject, "body": body},
        dedupe_key=dedupe_key,
        max_attempts=MAIL_MAX_ATTEMPTS,
    )


def build_message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    sender_domain = parseaddr(settings.mail_sender)[1].rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(domain=sender_domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no automatic replies, please
    # Quoted-printable keeps the message 7-bit clean for any relay, accents and all.
    message.set_content(body, charset="utf-8", cte="quoted-printable")
    return message


def send_mail(
    settings: Settings, to: str, subject: str, body: str, *, out: TextIO | None = None
) -> None:
    """Send one e-mail now (the `mail.send` job calls this). Raises `MailNotConfigured` in
    production without SMTP, `MailRejected` when the server refuses it for good, and the
    `smtplib`/`OSError` exceptions of a server that cannot be reached or fails for now."""
    if not settings.mail_configured:
        if settings.is_production:
            raise MailNotConfigured(
                "SMTP_HOST is not set: production cannot send e-mail; set SMTP_HOST, "
                "then run `parcours jobs retry --kind mail.send`"
            )
        _print_for_developer(out or sys.stdout, settings, to, subject, body)
        return
    message = build_message(settings, to, subject, body)
    host, port, timeout = settings.smtp_host, settings.smtp_port_or_default, settings.smtp_timeout
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_security == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if settings.smtp_security == "starttls":
            smtp.starttls(context=context)
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        try:
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({code for code, _reply in error.recipients.values()})
            if codes and all(500 <= code < 600 for code in codes):
                raise MailRejected(f"the mail server refused the recipient ({codes[0]})") from None
            raise
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as error:
            if 500 <= error.smtp_code < 600 and error.smtp_code != 552:  # 552: try again later
                raise MailRejected(
                    f"the mail server refused the message ({error.smtp_code})"
                ) from None
            raise


def _print_for_developer(out: TextIO, settings: Settings, to: str, subject: str, body: str) -> None:
    rule = "-" * 72
    out.write(
        f"{rule}\n"
        "E-mail not sent (no SMTP_HOST in development); here it is:\n"
        f"From: {settings.mail_sender}\nTo: {to}\nSubject: {subject}\n\n{body}\n{rule}\n"
    )
    out.flush()


def settings_for_jobs() -> Settings:
    """The worker's settings, read from the environment like every process's."""
    return Settings.from_env()


@job_handler(MAIL_JOB)
def deliver(session: Session, payload: dict[str, Any]) -> None:
    """The `mail.send` job: a server that fails now is tried again later."""
    to, subject, body = str(payload["to"]), str(payload["subject"]), str(payload["body"])
    settings = settings_for_jobs()
    try:
        send_mail(settings, to, subject, body)
    except PermanentFailure:
        raise
    except (smtplib.SMTPException, OSError) as error:
        # The server's reply, never the message: the body holds links that grant access.
        raise RetryLater(
            f"mail server {settings.smtp_host}:{settings.smtp_port_or_default} failed: "
            f"{type(error).__name__}: {_reply(error)}"
        ) from None


def _reply(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply or "")
        return f"{error.smtp_code} {text}"[:200]
    return str(error)[:200]
