"""A tiny SMTP server on 127.0.0.1 for tests of e-mail delivery, and a clean environment for the
worker (which reads its settings from the environment, like `parcours worker`)."""

from __future__ import annotations

import base64
import email
import email.policy
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest


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


def serve(sink: SmtpSink) -> Iterator[SmtpSink]:
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


def clean_worker_environment(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Remove the mail and deployment variables; returns a function that sets some."""
    for name in MAIL_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def use(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return use


def smtp_environment(sink: SmtpSink) -> dict[str, str]:
    """The variables that send the worker's e-mail to `sink`."""
    return {"SMTP_HOST": sink.host, "SMTP_PORT": str(sink.port), "SMTP_SECURITY": "none"}
