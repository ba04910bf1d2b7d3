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
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit


class Result:
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
        # Envelope phase: any failure here means the message was not delivered.
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            code, msg = conn.mail(mail_from)
            if code != 250:
                return self._refused(code, msg)
            code, msg = conn.rcpt(rcpt)
            if code not in (250, 251):
                return self._refused(code, msg)
        except smtplib.SMTPResponseException as exc:
            self._drop()
            return Outcome(classify_code(exc.smtp_code), exc.smtp_code, _text(exc.smtp_error),
                           "envelope")
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.TEMPORARY, 0, f"connection: {exc}", "envelope")

        if before_data is not None:
            try:
                before_data()
            except BaseException:
                self._reset()
                raise

        # Data phase: once the body may have reached the server, a broken
        # connection leaves the outcome unknown.
        try:
            code, msg = conn.data(data)
        except smtplib.SMTPDataError as exc:
            self._reset()
            return Outcome(classify_code(exc.smtp_code), exc.smtp_code, _text(exc.smtp_error))
        except smtplib.SMTPResponseException as exc:
            self._drop()
            if exc.smtp_code == 354 or exc.smtp_code < 0:
                return Outcome(Result.UNKNOWN, exc.smtp_code, _text(exc.smtp_error))
            return Outcome(classify_code(exc.smtp_code), exc.smtp_code, _text(exc.smtp_error))
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.UNKNOWN, 0, f"connection lost during DATA: {exc}")
        return Outcome(Result.SENT, code, _text(msg))

    def _refused(self, code: int, msg: bytes) -> Outcome:
        self._reset()
        return Outcome(classify_code(code), code, _text(msg), "envelope")

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
