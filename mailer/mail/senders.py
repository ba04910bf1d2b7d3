"""How bytes leave: SMTP relay, local outbox folder, or memory (unit tests).

Chosen by configuration alone (`MAILER_SMTP_URL`). Every sender answers with an
`Outcome` that tells apart what the ledger must treat differently: delivered,
temporary failure (try later), permanent failure (never retry) and unknown
(the connection broke after the message body was sent: it may have arrived).
"""

from __future__ import annotations

import os
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit


class Result(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outcome:
    result: str
    code: int = 0
    message: str = ""
    stage: str = "data"  # "envelope" (MAIL/RCPT, nothing delivered) or "data"
    marked: bool = False  # `before_data` ran (the attempt is on record) before an envelope refusal

    @property
    def counted(self) -> bool:
        """Whether `before_data` ran, i.e. the ledger already counted this attempt."""
        return self.stage == "data" or self.marked

    @property
    def sent(self) -> bool:
        return self.result == Result.SENT


SENT = Outcome(Result.SENT, 250, "")


class Sender(Protocol):
    def send(
        self,
        mail_from: str,
        rcpt: str,
        data: bytes,
        before_data: Callable[[], None] | None = None,
    ) -> Outcome:
        """Send one message. `before_data` runs after the envelope is accepted
        and before the body goes out: the last moment nothing has been delivered."""
        ...

    def close(self) -> None: ...


def classify_code(code: int) -> str:
    if 200 <= code < 300:
        return Result.SENT
    if 400 <= code < 500:
        return Result.TEMPORARY
    return Result.PERMANENT


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str
    password: str
    implicit_tls: bool
    starttls: bool
    timeout: float

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"MAILER_SMTP_URL must start with smtp:// or smtps://, got {url!r}")
        if not parts.hostname:
            raise ValueError("MAILER_SMTP_URL has no host")
        query = parse_qs(parts.query)
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            implicit_tls=implicit,
            starttls=query.get("starttls", ["0"])[0] in ("1", "true", "yes"),
            timeout=float(query.get("timeout", ["30"])[0]),
        )


class SmtpSender:
    """One persistent SMTP connection, reused message after message.

    A connection is re-opened after an error. Not thread-safe: use one per thread
    (see `thread_local_sender`).
    """

    def __init__(self, target: SmtpTarget, local_hostname: str | None = None) -> None:
        self.target = target
        self.local_hostname = local_hostname
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        conn: smtplib.SMTP
        if t.implicit_tls:
            conn = smtplib.SMTP_SSL(
                t.host, t.port, local_hostname=self.local_hostname, timeout=t.timeout,
                context=ssl.create_default_context(),
            )
        else:
            conn = smtplib.SMTP(t.host, t.port, local_hostname=self.local_hostname,
                                timeout=t.timeout)
        conn.ehlo()
        if t.starttls:
            conn.starttls(context=ssl.create_default_context())
            conn.ehlo()
        if t.username:
            conn.login(t.username, t.password)
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: S110 - closing a broken socket
                pass
        self._conn = None

    def send(
        self,
        mail_from: str,
        rcpt: str,
        data: bytes,
        before_data: Callable[[], None] | None = None,
    ) -> Outcome:
        """MAIL, RCPT and DATA go out in one write when the server offers
        PIPELINING (RFC 2920), and `before_data` (the ledger write) runs while
        they travel: one round trip for the envelope and the ledger together,
        one for the body. `data` must already have CRLF line ends."""
        if "\r" in mail_from or "\n" in mail_from or "\r" in rcpt or "\n" in rcpt:
            return Outcome(Result.PERMANENT, 0, "CR/LF in an envelope address", "envelope")
        commands = [f"MAIL FROM:<{mail_from}>\r\n", f"RCPT TO:<{rcpt}>\r\n", "DATA\r\n"]
        # Envelope phase: any failure here means the message was not delivered.
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            pipelining = conn.has_extn("pipelining")
            if pipelining:
                conn.send("".join(commands))
        except smtplib.SMTPResponseException as exc:
            self._drop()
            return Outcome(classify_code(exc.smtp_code), exc.smtp_code, _text(exc.smtp_error),
                           "envelope")
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.TEMPORARY, 0, f"connection: {exc}", "envelope")
        if pipelining:
            self._before_data(before_data)
            refused = self._read_envelope_replies(len(commands), marked=True)
        else:
            refused = self._envelope_one_by_one(commands, before_data)
        if refused is not None:
            return refused

        # Data phase: once the body may have reached the server, a broken
        # connection leaves the outcome unknown.
        if data.startswith(b"."):
            data = b"." + data
        if b"\r\n." in data:
            data = data.replace(b"\r\n.", b"\r\n..")  # dot-stuffing (RFC 5321 4.5.2)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        try:
            if conn.sock is None:
                raise smtplib.SMTPServerDisconnected("connection closed before DATA")
            conn.sock.sendall(data + b".\r\n")
            code, msg = conn.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.UNKNOWN, 0, f"connection lost during DATA: {exc}")
        if code == 250:
            return Outcome(Result.SENT, code, "")
        if code < 0:
            self._drop()
            return Outcome(Result.UNKNOWN, code, _text(msg))
        return Outcome(classify_code(code), code, _text(msg))

    def _before_data(self, before_data: Callable[[], None] | None) -> None:
        if before_data is None:
            return
        try:
            before_data()
        except BaseException:
            # The server may be waiting for a body; only closing the connection
            # abandons the transaction without delivering anything.
            self._drop()
            raise

    def _read_envelope_replies(self, count: int, marked: bool) -> Outcome | None:
        """Replies to MAIL, RCPT, DATA; None when the server waits for the body."""
        assert self._conn is not None
        try:
            replies = [self._conn.getreply() for _ in range(count)]
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.TEMPORARY, 0, f"connection: {exc}", "envelope", marked)
        (mail_code, mail_msg), (rcpt_code, rcpt_msg), (data_code, data_msg) = replies
        data_started = data_code == 354
        if mail_code != 250:
            return self._refused(mail_code, mail_msg, data_started, marked)
        if rcpt_code not in (250, 251):
            return self._refused(rcpt_code, rcpt_msg, data_started, marked)
        if not data_started:
            return self._refused(data_code, data_msg, False, marked)
        return None

    def _envelope_one_by_one(self, commands: list[str],
                             before_data: Callable[[], None] | None) -> Outcome | None:
        """For servers without PIPELINING: each command waits for its reply."""
        assert self._conn is not None
        conn = self._conn
        try:
            for command, ok in zip(commands[:2], ((250,), (250, 251)), strict=True):
                conn.send(command)
                code, msg = conn.getreply()
                if code not in ok:
                    return self._refused(code, msg)
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.TEMPORARY, 0, f"connection: {exc}", "envelope")
        self._before_data(before_data)
        try:
            conn.send(commands[2])
            code, msg = conn.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.TEMPORARY, 0, f"connection: {exc}", "envelope", True)
        if code != 354:
            return self._refused(code, msg, False, True)
        return None

    def _refused(self, code: int, msg: bytes, data_started: bool = False,
                 marked: bool = False) -> Outcome:
        if data_started or code == 421 or code < 0:
            self._drop()  # a server that accepted DATA anyway, or is closing: start afresh
        else:
            self._reset()
        return Outcome(classify_code(code), code, _text(msg), "envelope", marked)

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self._drop()


class OutboxSender:
    """Writes each message as an `.eml` file: the embedded default, no server needed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def send(
        self,
        mail_from: str,
        rcpt: str,
        data: bytes,
        before_data: Callable[[], None] | None = None,
    ) -> Outcome:
        if before_data is not None:
            before_data()
        name = f"{time.time_ns()}-{os.getpid()}-{threading.get_ident()}.eml"
        tmp = self.folder / f".{name}.tmp"
        envelope = f"X-Envelope-From: {mail_from}\r\nX-Envelope-To: {rcpt}\r\n".encode()
        tmp.write_bytes(envelope + data)
        tmp.replace(self.folder / name)  # atomic: readers never see half a file
        return SENT

    def close(self) -> None:
        pass


class MemorySender:
    """Keeps messages in a list; unit tests of the code around sending only."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, bytes]] = []
        self.script: dict[str, Outcome] = {}  # rcpt -> outcome to answer instead

    def send(
        self,
        mail_from: str,
        rcpt: str,
        data: bytes,
        before_data: Callable[[], None] | None = None,
    ) -> Outcome:
        scripted = self.script.get(rcpt)
        if scripted is not None and scripted.result in (Result.TEMPORARY, Result.PERMANENT):
            return scripted
        if before_data is not None:
            before_data()
        if scripted is not None:
            return scripted
        self.messages.append((mail_from, rcpt, data))
        return SENT

    def close(self) -> None:
        pass


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def make_sender(smtp_url: str, outbox: Path, helo: str = "localhost") -> Sender:
    if smtp_url:
        return SmtpSender(SmtpTarget.from_url(smtp_url), local_hostname=helo)
    return OutboxSender(outbox)
