"""How bytes leave: SMTP relay, local outbox folder, or memory (unit tests).

Chosen by configuration alone (`MAILER_SMTP_URL`). Every sender answers with an
`Outcome` that tells apart what the ledger must treat differently: delivered,
temporary failure (try later), permanent failure (never retry) and unknown
(the connection broke after the message body was sent: it may have arrived).

Two more answers concern the relay rather than the recipient: `RELAY` (it refused
or dropped the connection, hung, or answered garbage before the body went out:
nothing was delivered, try again on a fresh connection) and `MISCONFIGURED`
(wrong password, TLS or URL: retrying will not help; someone must fix settings).

`MAILER_SMTP_URL` may list several relays, comma-separated, each with optional
`weight=N` and `max_connections=N` query parameters: `RelayPool` spreads
messages over them by weight, takes out a relay that fails (connection errors,
a storm of 4xx answers) and lets it back in after a health check.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)


class Result(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"
    RELAY = "relay"  # the relay failed before the body went out: nothing delivered
    MISCONFIGURED = "misconfigured"  # credentials/TLS/URL wrong: retrying will not help


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

    @property
    def retryable(self) -> bool:
        """Not delivered, and worth another try later: the recipient's server said
        so, or the relay failed (a misconfigured one once someone fixes it)."""
        return self.result in (Result.TEMPORARY, Result.RELAY, Result.MISCONFIGURED)


SENT = Outcome(Result.SENT, 250, "")


@dataclass(frozen=True)
class Envelope:
    """One message to hand over: envelope sender, recipient, CRLF-ended bytes (or a
    future of them: a thread may still be signing it while the envelope goes out)."""

    mail_from: str
    rcpt: str
    data: bytes | Future[bytes]

    def body(self) -> bytes:
        return self.data if isinstance(self.data, bytes) else self.data.result()


def data_terminated(data: bytes) -> bytes:
    """A message body as it goes after DATA: dot-stuffed (RFC 5321 4.5.2), CRLF-ended,
    with the final dot line."""
    if data.startswith(b"."):
        data = b"." + data
    if b"\r\n." in data:
        data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _HeldBack(Exception):
    pass


def send_each(sender: Sender, items: Sequence[Envelope],
              before_data: Callable[[list[int]], Collection[int]]) -> list[Outcome | None]:
    """`send_many` one message after another, for senders that hold one connection
    (or none). Stops at a relay failure: the rest are not attempted (None)."""
    results: list[Outcome | None] = [None] * len(items)
    for index, item in enumerate(items):
        def hook(index: int = index) -> None:
            if index not in before_data([index]):
                raise _HeldBack
        try:
            outcome = sender.send(item.mail_from, item.rcpt, item.body(), before_data=hook)
        except _HeldBack:
            continue
        results[index] = outcome
        if outcome.result in (Result.RELAY, Result.MISCONFIGURED):
            break
    return results


def send_many(sender: Sender, items: Sequence[Envelope],
              before_data: Callable[[list[int]], Collection[int]]) -> list[Outcome | None]:
    """Hand over several messages with one `before_data` call where the sender
    can (several connections to one SMTP relay); see `SmtpSender.send_many`."""
    if isinstance(sender, SmtpSender):
        return sender.send_many(items, before_data)
    return send_each(sender, items, before_data)


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

    def probe(self) -> Outcome | None:
        """Check that a relay can be reached (connect, EHLO, NOOP); None when it can."""
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
    weight: int = 1
    max_connections: int = 0  # per worker process; 0 = no cap
    rate: float = 0.0  # messages per second to this relay, across workers; 0 = no cap

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"MAILER_SMTP_URL must start with smtp:// or smtps://, got {url!r}")
        if not parts.hostname:
            raise ValueError("MAILER_SMTP_URL has no host")
        query = parse_qs(parts.query)
        implicit = parts.scheme == "smtps"
        where = f"MAILER_SMTP_URL relay {parts.hostname}"
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{where}: the port is not a number") from exc
        weight = _number(query, "weight", "1", int, where)
        max_connections = _number(query, "max_connections", "0", int, where)
        timeout = _number(query, "timeout", "30", float, where)
        rate = _number(query, "rate", "0", float, where)
        if weight < 0 or max_connections < 0 or timeout <= 0 or rate < 0:
            raise ValueError(f"{where}: weight, max_connections and rate must be >= 0 "
                             "and timeout > 0")
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit else 25),
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            implicit_tls=implicit,
            starttls=query.get("starttls", ["0"])[0] in ("1", "true", "yes"),
            timeout=timeout,
            weight=weight,
            max_connections=max_connections,
            rate=rate,
        )


def _number(query: dict[str, list[str]], name: str, default: str, kind: type[Any],
            where: str) -> Any:
    raw = query.get(name, [default])[0]
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{where}: {name} must be a number, got {raw!r}") from None


def parse_relays(smtp_url: str) -> list[SmtpTarget]:
    """Every relay of a (possibly comma-separated) MAILER_SMTP_URL; ValueError if any is bad."""
    targets = [SmtpTarget.from_url(part) for part in smtp_url.split(",") if part.strip()]
    if not targets:
        raise ValueError("MAILER_SMTP_URL lists no relay")
    if not any(t.weight for t in targets):
        raise ValueError("MAILER_SMTP_URL: at least one relay needs a weight above 0")
    return targets


def _envelope_refusal(mail_from: str, rcpt: str) -> Outcome | None:
    """CR or LF in an envelope address would inject SMTP commands: refused, never sent."""
    if "\r" in mail_from or "\n" in mail_from or "\r" in rcpt or "\n" in rcpt:
        return Outcome(Result.PERMANENT, 0, "CR/LF in an envelope address", "envelope")
    return None


def _connect_failure(exc: BaseException) -> Outcome:
    """What a failure to open a relay connection means for the send."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Outcome(Result.MISCONFIGURED, exc.smtp_code,
                       f"relay refused the credentials: {_text(exc.smtp_error)}", "connect")
    if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return Outcome(Result.MISCONFIGURED, 0, f"relay setup: {exc}", "connect")
    if isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600:
        return Outcome(Result.MISCONFIGURED, exc.smtp_code,
                       f"relay refused the session: {_text(exc.smtp_error)}", "connect")
    return Outcome(Result.RELAY, getattr(exc, "smtp_code", 0) or 0,
                   f"relay unreachable: {exc or type(exc).__name__}", "connect")


class SmtpSender:
    """One persistent SMTP connection, reused message after message.

    A connection is re-opened after an error. Not thread-safe: use one per thread
    (see `thread_local_sender`).
    """

    def __init__(self, target: SmtpTarget, local_hostname: str | None = None) -> None:
        self.target = target
        self.local_hostname = local_hostname
        self._conn: smtplib.SMTP | None = None
        # More connections to the same relay, for send_many (created when needed).
        self._peers: list[SmtpSender] = []
        self._width_cap = 0  # 0: as many connections as asked for
        self._width_until = 0.0

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
        commands = [f"MAIL FROM:<{mail_from}>\r\n", f"RCPT TO:<{rcpt}>\r\n", "DATA\r\n"]
        # Envelope phase: any failure here means the message was not delivered.
        failure = _envelope_refusal(mail_from, rcpt) or self._ensure_connected()
        if failure is not None:
            return failure
        conn = self._conn
        assert conn is not None
        try:
            pipelining = conn.has_extn("pipelining")
            if pipelining:
                conn.send("".join(commands))
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.RELAY, 0, f"connection lost: {exc}", "envelope")
        if pipelining:
            self._before_data(before_data)
            refused = self._read_envelope_replies(len(commands), marked=True)
        else:
            refused = self._envelope_one_by_one(commands, before_data)
        if refused is not None:
            return refused

        # Data phase: once the body may have reached the server, a broken
        # connection leaves the outcome unknown.
        return self._write_body(data) or self._body_reply()

    def _write_body(self, data: bytes) -> Outcome | None:
        """Send the (dot-stuffed) body and its final dot; None when it went out."""
        try:
            if self._conn is None or self._conn.sock is None:
                raise smtplib.SMTPServerDisconnected("connection closed before DATA")
            self._conn.sock.sendall(data_terminated(data))
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.UNKNOWN, 0, f"connection lost during DATA: {exc}")
        return None

    def _body_reply(self) -> Outcome:
        """The server's answer to a body: sent, refused, or unknown (connection lost)."""
        try:
            if self._conn is None:
                raise smtplib.SMTPServerDisconnected("connection closed during DATA")
            code, msg = self._conn.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.UNKNOWN, 0, f"connection lost during DATA: {exc}")
        if code == 250:
            return SENT
        if code < 0:
            self._drop()
            return Outcome(Result.UNKNOWN, code, _text(msg))
        return Outcome(classify_code(code), code, _text(msg))

    def _begin(self, mail_from: str, rcpt: str) -> Outcome | None:
        """Connect when needed and write MAIL, RCPT and DATA in one go (the server
        offers PIPELINING). None when they are on their way; else why not (nothing
        was delivered)."""
        failure = _envelope_refusal(mail_from, rcpt) or self._ensure_connected()
        if failure is not None:
            return failure
        assert self._conn is not None
        try:
            if self._conn.sock is None:
                raise smtplib.SMTPServerDisconnected("connection closed")
            self._conn.sock.sendall(
                f"MAIL FROM:<{mail_from}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
        except (smtplib.SMTPException, OSError, UnicodeEncodeError) as exc:
            self._drop()
            return Outcome(Result.RELAY, 0, f"connection lost: {exc}", "envelope")
        return None

    def _pipelining(self) -> bool | Outcome:
        """Whether the relay offers PIPELINING (connecting first); an Outcome when
        it cannot be reached."""
        failure = self._ensure_connected()
        if failure is not None:
            return failure
        assert self._conn is not None
        return bool(self._conn.has_extn("pipelining"))

    def _ensure_connected(self) -> Outcome | None:
        """Open the connection when there is none; the Outcome when it cannot be."""
        if self._conn is None:
            try:
                self._conn = self._connect()
            except (smtplib.SMTPException, OSError, ValueError) as exc:
                self._drop()
                return _connect_failure(exc)
        return None

    def send_many(self, items: Sequence[Envelope],
                  before_data: Callable[[list[int]], Collection[int]]) -> list[Outcome | None]:
        """Send up to `connections` messages at once, one per connection to this
        relay, with one `before_data` call (one ledger write) for all of them.

        Each connection gets MAIL, RCPT and DATA in one write; `before_data` runs
        with the indices of the messages whose envelope went out, while those
        travel, and returns the indices that may go on (the others' transactions
        are abandoned by closing their connection). No body is written before it
        returns. Then every body goes out and the replies are read. The answer
        per message is its Outcome, or None when it was not attempted (its
        connection could not be opened, or `before_data` held it back): nothing
        was delivered and `before_data` either did not name it or refused it.
        """
        pipelining = self._pipelining()
        if isinstance(pipelining, Outcome):
            return [pipelining, *([None] * (len(items) - 1))]
        if not pipelining:
            return send_each(self, items, before_data)
        conns = self._connections(len(items))
        results: list[Outcome | None] = [None] * len(items)
        started: list[int] = []
        for index, item in enumerate(items[:len(conns)]):
            failure = conns[index]._begin(item.mail_from, item.rcpt)
            if failure is None:
                started.append(index)
            elif index == 0 or failure.result not in (Result.RELAY, Result.MISCONFIGURED):
                results[index] = failure
            elif failure.stage == "connect":
                # A further connection the relay will not take: use fewer; this
                # message and the rest wait for the next call.
                self._narrow(index, failure.message)
                break
            # else: a further connection had gone stale; it reconnects next time.
        if not started:
            return results
        try:
            go_on = set(before_data(started))
            bodies = {index: items[index].body() for index in started if index in go_on}
        except BaseException:
            # Relays may be waiting for bodies; only closing abandons the transactions.
            for index in started:
                conns[index]._drop()
            raise
        writing: list[int] = []
        for index in started:
            sender = conns[index]
            if index not in go_on:
                sender._drop()
                continue
            refused = sender._read_envelope_replies(3, marked=True)
            if refused is not None:
                results[index] = refused
                continue
            failure = sender._write_body(bodies[index])
            if failure is not None:
                results[index] = failure
                continue
            writing.append(index)
        for index in writing:
            results[index] = conns[index]._body_reply()
        return results

    def _connections(self, wanted: int) -> list[SmtpSender]:
        """This sender and its peers (more connections to the same relay)."""
        if self._width_cap and time.monotonic() >= self._width_until:
            self._width_cap = 0
        count = min(wanted, self._width_cap or wanted)
        while len(self._peers) < count - 1:
            self._peers.append(SmtpSender(self.target, self.local_hostname))
        return [self, *self._peers[:count - 1]]

    def _narrow(self, count: int, reason: str) -> None:
        if self._width_cap != count:
            log.warning("relay %s refused connection %d of a lane (%s); using %d for a minute",
                        self.target.name, count + 1, reason, count)
        self._width_cap = count
        self._width_until = time.monotonic() + 60.0
        for peer in self._peers[count - 1:]:
            peer.close()

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
            return Outcome(Result.RELAY, 0, f"connection lost: {exc}", "envelope", marked)
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
            return Outcome(Result.RELAY, 0, f"connection lost: {exc}", "envelope")
        self._before_data(before_data)
        try:
            conn.send(commands[2])
            code, msg = conn.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(Result.RELAY, 0, f"connection lost: {exc}", "envelope", True)
        if code != 354:
            return self._refused(code, msg, False, True)
        return None

    def _refused(self, code: int, msg: bytes, data_started: bool = False,
                 marked: bool = False) -> Outcome:
        if not 200 <= code < 600:
            # Not an SMTP reply at all (garbage, a cut line): the relay is broken,
            # not the recipient. Nothing was delivered; start afresh.
            self._drop()
            return Outcome(Result.RELAY, code, f"relay answered garbage: {_text(msg)[:200]}",
                           "envelope", marked)
        if data_started or code == 421:
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

    def probe(self) -> Outcome | None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            code, msg = self._conn.noop()
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            self._drop()
            return _connect_failure(exc)
        if code != 250:
            self._drop()
            return Outcome(Result.RELAY, code, f"relay answered NOOP with {code} {_text(msg)}",
                           "connect")
        return None

    def close(self) -> None:
        for peer in self._peers:
            peer.close()
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

    def probe(self) -> Outcome | None:
        return None

    def close(self) -> None:
        pass


class MemorySender:
    """Keeps messages in a list; unit tests of the code around sending only."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, bytes]] = []
        self.script: dict[str, Outcome] = {}  # rcpt -> outcome to answer instead
        self.relay_down: Outcome | None = None  # answered to every send and probe while set

    def send(
        self,
        mail_from: str,
        rcpt: str,
        data: bytes,
        before_data: Callable[[], None] | None = None,
    ) -> Outcome:
        if self.relay_down is not None:
            return self.relay_down
        scripted = self.script.get(rcpt)
        if scripted is not None and scripted.result in (Result.TEMPORARY, Result.PERMANENT,
                                                        Result.RELAY, Result.MISCONFIGURED):
            return scripted
        if before_data is not None:
            before_data()
        if scripted is not None:
            return scripted
        self.messages.append((mail_from, rcpt, data))
        return SENT

    def probe(self) -> Outcome | None:
        return self.relay_down

    def close(self) -> None:
        pass


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


# A relay taken out is tried again (health check) after this long, doubling per
# failed check up to the cap.
RELAY_RETRY_FIRST = 0.5
RELAY_RETRY_CAP = 8.0
# A "storm": at least this many of a relay's last STORM_WINDOW answers were 4xx.
STORM_WINDOW = 40
STORM_THRESHOLD = 20
STORM_PAUSE = 30.0


@dataclass
class RelayHealth:
    """One relay's state in this process, shared by every thread's pool."""

    target: SmtpTarget
    down_until: float = 0.0
    failures: int = 0  # consecutive failed connections / health checks
    last_error: str = ""
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=STORM_WINDOW))
    connections: int = 0  # open in this process

    def is_up(self, now: float) -> bool:
        return self.failures == 0 or now >= self.down_until


_health: dict[SmtpTarget, RelayHealth] = {}
_health_lock = threading.Lock()


def relay_health(target: SmtpTarget) -> RelayHealth:
    with _health_lock:
        item = _health.get(target)
        if item is None:
            item = _health[target] = RelayHealth(target)
        return item


# Takes a send slot for a relay (by name): 0 when taken (after sleeping up to
# `max_wait`), else the seconds until one is free and nothing is taken.
RelayLimit = Callable[[str, float], float]


class RelayPool:
    """Several relays behind one `Sender`: one connection per relay per thread.

    Each message goes to a relay picked by smooth weighted round-robin among
    those that are in. A relay whose connection fails before anything was
    handed over is taken out and the message tries the next one; a relay
    answering 4xx to more than half of its recent messages is taken out too.
    A relay that is out gets a health check (connect, EHLO, NOOP) once its
    wait is over, before any message uses it again.
    """

    def __init__(self, targets: list[SmtpTarget], local_hostname: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 limit: RelayLimit | None = None) -> None:
        self.limit = limit
        self.health = [relay_health(t) for t in targets]
        self.senders = [SmtpSender(t, local_hostname) for t in targets]
        self.current = [0] * len(targets)
        self.clock = clock

    def _take_out(self, index: int, reason: str, seconds: float | None = None) -> None:
        h = self.health[index]
        with _health_lock:
            h.failures += 1
            wait = seconds if seconds is not None else min(
                RELAY_RETRY_FIRST * 2 ** (h.failures - 1), RELAY_RETRY_CAP)
            h.down_until = self.clock() + wait
            h.last_error = reason
            h.recent.clear()
        self._close(index)
        log.warning("relay %s taken out for %.1fs: %s", h.target.name, wait, reason)

    def _close(self, index: int) -> None:
        sender = self.senders[index]
        if sender._conn is not None:
            sender.close()
            with _health_lock:
                self.health[index].connections -= 1

    def _usable(self, index: int, now: float) -> bool:
        h = self.health[index]
        if h.target.weight <= 0 or not h.is_up(now):
            return False
        cap = h.target.max_connections
        return self.senders[index]._conn is not None or not cap or h.connections < cap

    def _pick(self, exclude: set[int]) -> int | None:
        now = self.clock()
        candidates = [i for i in range(len(self.health))
                      if i not in exclude and self._usable(i, now)]
        if not candidates:
            return None
        total = sum(self.health[i].target.weight for i in candidates)
        for i in candidates:
            self.current[i] += self.health[i].target.weight
        best = max(candidates, key=lambda i: self.current[i])
        self.current[best] -= total
        return best

    def _pick_within_rate(self, exclude: set[int]) -> int | None:
        """Like `_pick`, skipping relays whose rate cap has no slot free now; when
        every candidate is capped, waits for the one free soonest."""
        skip = set(exclude)
        waits: dict[int, float] = {}
        while (index := self._pick(skip)) is not None:
            rate = self.health[index].target.rate
            if not rate or self.limit is None:
                return index
            wait = self.limit(self.health[index].target.name, 0.0)
            if wait <= 0:
                return index
            waits[index] = wait
            skip.add(index)
        if not waits:
            return None
        best = min(waits, key=lambda i: waits[i])
        assert self.limit is not None
        self.limit(self.health[best].target.name, float("inf"))
        return best

    def _open(self, index: int) -> Outcome | None:
        """Connect when needed; a relay coming back from an outage is health-checked."""
        sender, h = self.senders[index], self.health[index]
        if sender._conn is not None:
            return None
        failure = sender.probe()
        if failure is not None:
            self._take_out(index, failure.message)
            return failure
        with _health_lock:
            h.connections += 1
            if h.failures:
                log.info("relay %s is back", h.target.name)
            h.failures = 0
        return None

    def send(self, mail_from: str, rcpt: str, data: bytes,
             before_data: Callable[[], None] | None = None) -> Outcome:
        tried: set[int] = set()
        last: Outcome | None = None
        while True:
            index = self._pick_within_rate(tried)
            if index is None:
                return last or Outcome(Result.RELAY, 0, "no relay reachable: " + "; ".join(
                    f"{h.target.name}: {h.last_error or 'out'}" for h in self.health), "connect")
            tried.add(index)
            failure = self._open(index)
            if failure is not None:
                if failure.result == Result.MISCONFIGURED:
                    return failure
                last = failure
                continue  # nothing was handed over: the next relay takes the message
            had_conn = self.senders[index]._conn is not None
            outcome = self.senders[index].send(mail_from, rcpt, data, before_data)
            if had_conn and self.senders[index]._conn is None:
                with _health_lock:
                    self.health[index].connections -= 1
            if outcome.result == Result.RELAY:
                self._take_out(index, outcome.message)
                if not outcome.counted:
                    last = outcome
                    continue
            elif outcome.result == Result.TEMPORARY and len(self.health) > 1:
                self._note(index, True)
            elif outcome.result in (Result.SENT, Result.PERMANENT):
                self._note(index, False)
            return outcome

    def _note(self, index: int, refused: bool) -> None:
        h = self.health[index]
        with _health_lock:
            h.recent.append(refused)
            storm = len(h.recent) >= STORM_THRESHOLD and sum(h.recent) >= STORM_THRESHOLD
        if storm:
            self._take_out(index, f"{STORM_THRESHOLD} or more 4xx answers in its last "
                                  f"{STORM_WINDOW} messages", STORM_PAUSE)

    def probe(self) -> Outcome | None:
        """None when at least one relay is in (or answers its health check)."""
        last: Outcome | None = None
        now = self.clock()
        for index in range(len(self.health)):
            if not self._usable(index, now):
                continue
            failure = self._open(index)
            if failure is None:
                return None
            if failure.result == Result.MISCONFIGURED:
                return failure
            last = failure
        return last or Outcome(Result.RELAY, 0, "no relay reachable", "connect")

    def close(self) -> None:
        for index in range(len(self.senders)):
            self._close(index)


class MisconfiguredSender:
    """Stands in for relays whose URL cannot be used: every send says why, so an
    edition pauses with that reason instead of burning through retries."""

    def __init__(self, reason: str) -> None:
        self.outcome = Outcome(Result.MISCONFIGURED, 0, reason, "connect")

    def send(self, mail_from: str, rcpt: str, data: bytes,
             before_data: Callable[[], None] | None = None) -> Outcome:
        return self.outcome

    def probe(self) -> Outcome | None:
        return self.outcome

    def close(self) -> None:
        pass


def make_sender(smtp_url: str, outbox: Path, helo: str = "localhost",
                relay_limit: RelayLimit | None = None) -> Sender:
    """The sender for MAILER_SMTP_URL; `relay_limit` enforces relays' `rate=` caps."""
    if not smtp_url:
        return OutboxSender(outbox)
    try:
        targets = parse_relays(smtp_url)
    except ValueError as exc:
        log.error("MAILER_SMTP_URL is unusable: %s", exc)
        return MisconfiguredSender(f"MAILER_SMTP_URL is unusable: {exc}")
    if len(targets) == 1 and not targets[0].rate:
        return SmtpSender(targets[0], local_hostname=helo)
    return RelayPool(targets, local_hostname=helo, limit=relay_limit)
