"""Read and empty a mailbox over IMAP or POP3 (`MAILER_BOUNCE_MAILBOX`).

`imaps://user:pass@host:993/INBOX`, `imap://…`, `pop3s://…`, `pop3://…`. A
message is removed from the server only when `delete()` is called, which the
caller does after the message's effect is committed.
"""

from __future__ import annotations

import imaplib
import poplib
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

# Bigger messages are not fetched whole: only their headers, then set aside.
MAX_MESSAGE_BYTES = 2_000_000
MAX_MESSAGES_PER_POLL = 500


class MailboxError(Exception):
    """The mailbox cannot be reached or refuses us (retried at the next poll)."""


@dataclass(frozen=True)
class MailboxUrl:
    scheme: str
    host: str
    port: int
    username: str
    password: str
    folder: str
    timeout: float
    verify_tls: bool

    @property
    def tls(self) -> bool:
        return self.scheme.endswith("s")

    @classmethod
    def parse(cls, url: str) -> MailboxUrl:
        parts = urlsplit(url)
        ports = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}
        if parts.scheme not in ports:
            raise ValueError("MAILER_BOUNCE_MAILBOX must start with imaps://, imap://, "
                             "pop3s:// or pop3://")
        if not parts.hostname:
            raise ValueError("MAILER_BOUNCE_MAILBOX has no host")
        if not parts.username:
            raise ValueError("MAILER_BOUNCE_MAILBOX has no user name")
        query = parse_qs(parts.query)
        try:
            port = parts.port or ports[parts.scheme]
        except ValueError as exc:
            raise ValueError("MAILER_BOUNCE_MAILBOX has an invalid port") from exc
        return cls(
            scheme=parts.scheme, host=parts.hostname, port=port,
            username=unquote(parts.username), password=unquote(parts.password or ""),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
            timeout=float(query.get("timeout", ["30"])[0]),
            verify_tls=query.get("verify", ["1"])[0] not in ("0", "false", "no"),
        )

    def masked(self) -> str:
        return f"{self.scheme}://{self.username}:***@{self.host}:{self.port}/{self.folder}"


@dataclass
class Fetched:
    key: str  # IMAP UID or POP3 message number
    raw: bytes
    size: int
    complete: bool  # False: too big, only the headers were fetched


class Mailbox(Protocol):
    def messages(self) -> Iterator[Fetched]: ...
    def delete(self, key: str) -> None: ...
    def close(self) -> None: ...


def _tls_context(url: MailboxUrl) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not url.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ImapMailbox:
    def __init__(self, url: MailboxUrl) -> None:
        self.url = url
        try:
            if url.tls:
                self.conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    url.host, url.port, ssl_context=_tls_context(url), timeout=url.timeout)
            else:
                self.conn = imaplib.IMAP4(url.host, url.port, timeout=url.timeout)
            self.conn.login(url.username, url.password)
            status, _ = self.conn.select(_quote(url.folder))
        except (imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError(f"{url.masked()}: {exc}") from exc
        if status != "OK":
            raise MailboxError(f"{url.masked()}: cannot open folder {url.folder!r}")
        self._deleted = False

    def messages(self) -> Iterator[Fetched]:
        try:
            status, data = self.conn.uid("SEARCH", "ALL")
        except (imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError(str(exc)) from exc
        uids = (data[0] or b"").split() if status == "OK" and data else []
        for uid in uids[:MAX_MESSAGES_PER_POLL]:
            key = uid.decode()
            status, data = self.conn.uid("FETCH", key, "(RFC822.SIZE)")
            match = re.search(rb"RFC822\.SIZE (\d+)", data[0] or b"") if data and \
                isinstance(data[0], bytes) else None
            size = int(match.group(1)) if match else 0
            complete = size <= MAX_MESSAGE_BYTES
            part = "BODY.PEEK[]" if complete else "BODY.PEEK[HEADER]"
            status, data = self.conn.uid("FETCH", key, f"({part})")
            raw = next((item[1] for item in data if isinstance(item, tuple)), b"")
            yield Fetched(key, bytes(raw), size or len(raw), complete)

    def delete(self, key: str) -> None:
        self.conn.uid("STORE", key, "+FLAGS.SILENT", r"(\Deleted)")
        self._deleted = True

    def close(self) -> None:
        try:
            if self._deleted:
                self.conn.expunge()
            self.conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


class Pop3Mailbox:
    def __init__(self, url: MailboxUrl) -> None:
        self.url = url
        try:
            if url.tls:
                self.conn: poplib.POP3 = poplib.POP3_SSL(
                    url.host, url.port, context=_tls_context(url), timeout=url.timeout)
            else:
                self.conn = poplib.POP3(url.host, url.port, timeout=url.timeout)
            self.conn.user(url.username)
            self.conn.pass_(url.password)
        except (poplib.error_proto, OSError) as exc:
            raise MailboxError(f"{url.masked()}: {exc}") from exc

    def messages(self) -> Iterator[Fetched]:
        try:
            _, listing, _ = self.conn.list()
        except (poplib.error_proto, OSError) as exc:
            raise MailboxError(str(exc)) from exc
        for line in listing[:MAX_MESSAGES_PER_POLL]:
            number, _, size_text = line.decode().partition(" ")
            size = int(size_text or 0)
            complete = size <= MAX_MESSAGE_BYTES
            if complete:
                _, lines, _ = self.conn.retr(int(number))
            else:
                _, lines, _ = self.conn.top(int(number), 0)
            yield Fetched(number, b"\r\n".join(lines) + b"\r\n", size, complete)

    def delete(self, key: str) -> None:
        self.conn.dele(int(key))

    def close(self) -> None:
        # POP3 removes messages marked for deletion only at a clean QUIT.
        try:
            self.conn.quit()
        except (poplib.error_proto, OSError):
            pass


def open_mailbox(url: str) -> Mailbox:
    try:
        parsed = MailboxUrl.parse(url)
    except ValueError as exc:
        raise MailboxError(str(exc)) from exc
    if parsed.scheme.startswith("imap"):
        return ImapMailbox(parsed)
    return Pop3Mailbox(parsed)


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
