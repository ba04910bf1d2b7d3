"""Build RFC 5322 messages cheaply: a skeleton per compiled email, bytes per reader.

Building a full `EmailMessage` per reader costs ~2 ms; here the headers shared by
every reader are folded once, both bodies are quoted-printable encoded once
(segment by segment around the reader placeholders), and each reader costs a
few joins. Header values from data are stripped of CR/LF: Python 3.11.7 drops
every header after one that ends in a newline (CVE-2024-6923).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr

from mailer.common.tokens import track_value
from mailer.mail.rendering import FillTemplate, escape_values

CRLF = "\r\n"
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def header_safe(value: str) -> str:
    """One line, no control characters: the only form data may reach a header in."""
    return " ".join(_CTRL_RE.sub(" ", value).split())


def fold_header(name: str, value: str) -> str:
    """A complete, folded header line (RFC 2047 encoded when not ASCII), CRLF-ended."""
    line = policy.SMTP.fold(name, header_safe(value))
    if not line.isascii():  # the email package leaves some code points unencoded
        line = f"{name}: {Header(header_safe(value), 'utf-8').encode()}\r\n"
    return line


def address_header(name: str, email: str) -> str:
    name = header_safe(name)
    email = header_safe(email)
    if name.isascii() and email.isascii():
        if not name:
            return email
        return formataddr((name, email))
    return policy.SMTP.fold("To", formataddr((name, email)))[4:].rstrip("\r\n").strip()


def qp(text: str) -> str:
    """Quoted-printable with CRLF line ends and soft breaks: lines stay short."""
    data = text.replace("\r\n", "\n").encode("utf-8")
    # b2a_qp ends soft breaks like the input's lines: LF here, CRLF afterwards.
    out = binascii.b2a_qp(data, istext=True).decode("ascii").replace("\n", "\r\n")
    # No line may start with '.': then SMTP never needs dot-stuffing, which
    # would copy the whole message per reader (MJML's CSS has `.class {` lines).
    out = out.replace("\r\n.", "\r\n=2E")
    return "=2E" + out[1:] if out.startswith(".") else out


def message_id(secret: str, edition_id: int, reader_id: int, domain: str) -> str:
    """The same (edition, reader) always gets the same Message-ID."""
    sig = hmac.new(secret.encode(), f"{edition_id}:{reader_id}".encode(), hashlib.sha256)
    return f"<e{edition_id}.r{reader_id}.{sig.hexdigest()[:12]}@{domain}>"


def domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


class _QPBody:
    """A body template QP-encoded once, segment by segment around placeholders."""

    __slots__ = ("fields", "parts")

    def __init__(self, template: FillTemplate) -> None:
        self.parts = [qp(p) if i % 2 == 0 else p for i, p in enumerate(template.parts)]
        self.fields = template.fields

    def fill(self, values: Mapping[str, str]) -> str:
        parts = self.parts.copy()
        for index, field in self.fields:
            parts[index] = values[field]
        return "".join(parts)


@dataclass
class Recipient:
    reader_id: int
    email: str
    name: str
    unsubscribe_url: str
    preferences_url: str
    token_nonce: str = ""  # the reader's, signed into tracking links

    def values(self) -> dict[str, str]:
        name = header_safe(self.name)
        return {
            "name": name,
            "email": self.email,
            "unsubscribe_url": self.unsubscribe_url,
            "preferences_url": self.preferences_url,
            "greeting": f"Hello {name}," if name else "Hello,",
        }


class MessageSkeleton:
    """Everything about one compiled email that does not depend on the reader."""

    def __init__(
        self,
        *,
        subject: str,
        html: str,
        text: str,
        mail_from: str,
        reply_to: str = "",
        unsubscribe_mailto: str = "",
        secret: str,
        edition_id: int,
        extra_headers: Mapping[str, str] | None = None,
        dkim: DkimSigner | None = None,
    ) -> None:
        self.secret = secret
        self.edition_id = edition_id
        self.domain = domain_of(mail_from)
        self.unsubscribe_mailto = header_safe(unsubscribe_mailto)
        self.dkim = dkim
        self.boundary = f"=_mailer_{secrets.token_hex(12)}"  # '=' never occurs in QP text
        shared = [
            fold_header("From", mail_from),
            fold_header("Subject", subject),
        ]
        if reply_to:
            shared.append(fold_header("Reply-To", reply_to))
        shared.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click" + CRLF)
        for key, value in (extra_headers or {}).items():
            shared.append(fold_header(key, value))
        shared.append("MIME-Version: 1.0" + CRLF)
        shared.append(f'Content-Type: multipart/alternative; boundary="{self.boundary}"' + CRLF)
        self.shared_headers = "".join(shared)
        self.text = _QPBody(FillTemplate(text))
        self.html = _QPBody(FillTemplate(html))
        self.tracked = any(f == "track" for _, f in self.html.fields)  # MAILER_TRACKING
        self.part_head = (
            f"{CRLF}--{self.boundary}{CRLF}"
            f'Content-Type: text/plain; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        )
        self.html_head = (
            f"{CRLF}--{self.boundary}{CRLF}"
            f'Content-Type: text/html; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        )
        self.tail = f"{CRLF}--{self.boundary}--{CRLF}"
        self._date_second = -1
        self._date = ""

    def _date_header(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = format_datetime(datetime.fromtimestamp(now, UTC))
        return self._date

    def render(self, rcpt: Recipient) -> bytes:
        values = rcpt.values()
        if self.tracked:
            values["track"] = track_value(self.secret, self.edition_id, rcpt.reader_id,
                                          rcpt.token_nonce)
        text_values = {k: qp(v) if not v.isascii() or "=" in v or v.startswith(".") else v
                       for k, v in values.items()}
        html_values = {k: qp(v) for k, v in escape_values(values).items()}
        unsubscribe = f"<{header_safe(rcpt.unsubscribe_url)}>"
        if self.unsubscribe_mailto:
            unsubscribe += f", <mailto:{self.unsubscribe_mailto}?subject=unsubscribe>"
        head = (
            f"Date: {self._date_header()}{CRLF}"
            f"Message-ID: {message_id(self.secret, self.edition_id, rcpt.reader_id, self.domain)}"
            f"{CRLF}To: {address_header(rcpt.name, rcpt.email)}{CRLF}"
            f"List-Unsubscribe: {unsubscribe}{CRLF}"
            + self.shared_headers
        )
        body = (
            "This is a multi-part message in MIME format."
            + self.part_head
            + self.text.fill(text_values)
            + self.html_head
            + self.html.fill(html_values)
            + self.tail
        )
        raw = (head + CRLF + body).encode("ascii")
        if self.dkim is not None:
            raw = self.dkim.sign(raw)
        return raw


class DkimSigner:
    """Optional DKIM signature over the headers receivers judge us by."""

    HEADERS = (b"from", b"to", b"subject", b"date", b"message-id",
               b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type")

    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector.encode()
        self.domain = domain.encode()
        self.private_key = private_key

    def sign(self, raw: bytes) -> bytes:
        import dkim  # imported lazily: only installations that sign need it loaded

        signature = dkim.sign(
            raw, self.selector, self.domain, self.private_key,
            include_headers=list(self.HEADERS),
        )
        return bytes(signature) + raw
