"""Build RFC 5322 messages cheaply: a skeleton per compiled email, bytes per reader.

Building a full `EmailMessage` per reader costs ~2 ms; here the headers shared by
every reader are folded once, both bodies are quoted-printable encoded once
(line by line; only lines holding a reader placeholder are re-encoded per
reader), and each reader costs a few joins. Header values from data are
stripped of CR/LF: Python 3.11.7 drops every header after one that ends in a
newline (CVE-2024-6923).

The quoted-printable encoding here keeps every line at most 76 characters and
never leaves two blanks in a row or a blank at a line end (the second blank
becomes `=20`): the body is then its own DKIM relaxed canonical form, so the
body hash is one SHA-256 over bytes already built, its shared prefix hashed once.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import re
import secrets
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import quote

from mailer.common.tokens import purpose_key, track_value
from mailer.mail.dkim import DkimSigner, canonical_header
from mailer.mail.rendering import FillTemplate, escape_values

CRLF = "\r\n"
QP_LINE = 76
TEXT_WIDTH = 72  # text/plain lines are wrapped here (a longer URL stays whole)
_URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"  # only what is not ASCII or a blank gets %-encoded
# Control characters, line separators and lone surrogates (JSON can carry them).
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")


def header_safe(value: str) -> str:
    """One line, no control characters: the only form data may reach a header in."""
    return " ".join(_CTRL_RE.sub(" ", value).split())


def fold_header(name: str, value: str) -> str:
    """A complete, folded header line (RFC 2047 encoded when not ASCII), CRLF-ended."""
    line: str = policy.SMTP.fold(name, header_safe(value))
    if not line.isascii():  # the email package leaves some code points unencoded
        # Header.encode folds with a bare LF: rejoin its lines with CRLF.
        words = Header(header_safe(value), "utf-8", header_name=name).encode(linesep="\r\n")
        line = f"{name}: {words}\r\n"
    return line


def address_header(name: str, email: str) -> str:
    name = header_safe(name)
    email = header_safe(email)
    if name.isascii() and email.isascii():
        if not name:
            return email
        return str(formataddr((name, email)))
    if not email.isascii():
        folded: str = policy.SMTP.fold("To", formataddr((name, email)))
        return folded[4:].rstrip("\r\n").strip()
    # The whole name as encoded words: the stdlib folder leaves ASCII runs of a
    # mixed name bare, and a bare ")" or "<" there makes parsers misread the address.
    return "\r\n ".join(encoded_words(name)) + f" <{email}>"


def encoded_words(text: str, max_bytes: int = 45) -> list[str]:
    """RFC 2047 "B" encoded words, each at most 72 characters (45 UTF-8 bytes), never
    splitting a character; a decoder joins adjacent words without the space between."""
    words: list[str] = []
    chunk: list[bytes] = []
    size = 0
    for char in text:
        data = char.encode("utf-8", "replace")
        if size + len(data) > max_bytes and chunk:
            words.append(b"".join(chunk).decode("utf-8"))
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    if chunk:
        words.append(b"".join(chunk).decode("utf-8"))
    return [f"=?utf-8?b?{base64.b64encode(w.encode()).decode('ascii')}?=" for w in words]


# --- quoted-printable -------------------------------------------------------------

# Characters a QP line may carry as they are: printable ASCII but '=', and single
# inner blanks. Everything else, a blank after a blank, a blank at either end
# of a piece and a dot starting one is written =XX.
_QP_ESCAPE = re.compile(r"[^\x21-\x3c\x3e-\x7e ]|(?<= ) |^ | $|^\.")


@functools.lru_cache(maxsize=4096)
def _qp_char(char: str) -> str:
    return "".join(f"={b:02X}" for b in char.encode("utf-8", "replace"))


def _qp_escape(match: re.Match[str]) -> str:
    return _qp_char(match.group())


def qp_piece(text: str) -> str:
    """One line (or part of a line) in QP, not yet wrapped."""
    return _QP_ESCAPE.sub(_qp_escape, text)


def qp_wrap(line: str, soft_end: bool = False) -> str:
    """Soft line breaks keep an encoded line at QP_LINE characters: never inside
    an =XX escape, never before a dot (a line starting with '.' needs dot-stuffing).
    `soft_end`: the caller ends the last line with a soft break ('='): leave room."""
    last_room = QP_LINE - 1 if soft_end else QP_LINE
    if len(line) <= last_room:
        return line
    out = []
    start = 0
    while len(line) - start > last_room:
        cut = start + QP_LINE - 1  # room for the '=' of the soft break
        while True:
            if line[cut - 1] == "=":
                cut -= 1
            elif line[cut - 2] == "=":
                cut -= 2
            if line[cut] == "." and cut - 1 > start:
                cut -= 1
                continue
            break
        out.append(line[start:cut] + "=")
        start = cut
    out.append(line[start:])
    return CRLF.join(out)


def qp(text: str) -> str:
    """Quoted-printable with CRLF line ends and soft breaks: lines stay short."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return CRLF.join(qp_wrap(qp_piece(line)) for line in lines)


def qp_value(value: str) -> str:
    """A reader value as it is spliced into an encoded line."""
    if value.isascii() and value.isprintable() and "=" not in value and "  " not in value \
            and not value.startswith((" ", ".")) and not value.endswith(" "):
        return value
    return qp_piece(value)


# Whitespace textwrap treats specially (any but single blanks between words);
# lines without it take the quick path.
_WRAP_SLOW = re.compile(r"[^\S ]|  |^ ")


def wrap_text(line: str, width: int) -> list[str]:
    """A text line wrapped at `width` at blanks; a longer word (a URL) stays whole."""
    if len(line) <= width or not line.strip():
        return [line]
    if not _WRAP_SLOW.search(line):
        # Single blanks between words (every per-reader line of our templates):
        # greedy, as textwrap.wrap does it, at a tenth of the cost.
        lines: list[str] = []
        current = ""
        for word in line.rstrip(" ").split(" "):
            if not current:
                current = word
            elif len(current) + 1 + len(word) <= width:
                current = f"{current} {word}"
            else:
                lines.append(current)
                current = word
        lines.append(current)
        return lines
    indent = line[: len(line) - len(line.lstrip())]
    return textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [line]


def _legal_cut(encoded: str, at: int) -> int:
    """The nearest position at or before `at` where an encoded line may be broken:
    not inside an =XX escape, not before a dot."""
    while at > 0 and (encoded[at - 1] == "=" or (at >= 2 and encoded[at - 2] == "=")
                      or (at < len(encoded) and encoded[at] == ".")):
        at -= 1
    return at


# A fixed piece longer than this, next to a placeholder, is pre-wrapped except
# for the few characters that share a line with the reader's value.
_LONG_PIECE = 160
_EDGE = 60


class _Line:
    """A body line holding reader placeholders: its fixed pieces encoded once.

    Long fixed pieces (MJML writes whole sections on one line) are wrapped once:
    per reader only the short runs around each value are joined and wrapped.
    With `width` (text parts) the whole line is wrapped at blanks per reader
    instead; fill() then takes unencoded values."""

    __slots__ = ("fields", "raw", "runs", "width")

    def __init__(self, parts: list[str], width: int = 0) -> None:
        self.raw = parts
        self.fields = [(i, parts[i]) for i in range(1, len(parts), 2)]
        self.width = width
        # runs: fixed text (already wrapped, ending in a soft break) or a list of
        # encoded text and ("field",) markers joined and wrapped per reader.
        self.runs: list[str | list[str | tuple[str]]] = []
        current: list[str | tuple[str]] = []
        last = len(parts) - 1
        for index, part in enumerate(parts):
            if index % 2:
                current.append((part,))
                continue
            piece = qp_piece(part)
            if len(piece) <= _LONG_PIECE:
                current.append(piece)
                continue
            head = _legal_cut(piece, _EDGE) if index > 0 else 0
            tail = _legal_cut(piece, len(piece) - _EDGE) if index < last else len(piece)
            if head:
                current.append(piece[:head])
            if current:
                self.runs.append(current)
            soft = tail < len(piece)
            self.runs.append(qp_wrap(piece[head:tail], soft) + ("=" + CRLF if soft else ""))
            current = [piece[tail:]] if tail < len(piece) else []
        if current:
            self.runs.append(current)

    def fill(self, values: Mapping[str, str]) -> str:
        if self.width:
            parts = self.raw.copy()
            for index, field in self.fields:
                parts[index] = values.get(field, "")
            lines = wrap_text("".join(parts), self.width)
            return CRLF.join(qp_wrap(qp_piece(line)) for line in lines)
        out = []
        for number, run in enumerate(self.runs):
            if isinstance(run, str):
                out.append(run)
                continue
            text = "".join(values.get(p[0], "") if isinstance(p, tuple) else p for p in run)
            if number < len(self.runs) - 1:
                out.append(qp_wrap(text, soft_end=True) + "=" + CRLF)
            else:
                out.append(qp_wrap(text))
        return "".join(out)


class QPBody:
    """A body template QP-encoded once; per reader only lines with placeholders
    are joined and wrapped again. `width`: wrap text lines at blanks (text/plain);
    then fill() takes the reader values unencoded."""

    __slots__ = ("items", "prefix")

    def __init__(self, template: FillTemplate, width: int = 0) -> None:
        text = "".join(p.replace("\x00", "") if i % 2 == 0 else f"\x00{p}\x00"
                       for i, p in enumerate(template.parts))
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.items: list[str | _Line] = []
        static: list[str] = []
        for index, line in enumerate(lines):
            last = index == len(lines) - 1
            if "\x00" in line:
                if static:
                    self.items.append("".join(static))
                    static = []
                self.items.append(_Line(line.split("\x00"), width))
                if not last:
                    static.append(CRLF)
            else:
                pieces = wrap_text(line, width) if width else [line]
                static.append(CRLF.join(qp_wrap(qp_piece(p)) for p in pieces)
                              + ("" if last else CRLF))
        if static:
            self.items.append("".join(static))
        # The fixed text before the first placeholder, shared by every reader.
        self.prefix = self.items[0] if self.items and isinstance(self.items[0], str) else ""

    def fill(self, values: Mapping[str, str], skip_prefix: bool = False) -> str:
        items = self.items[1:] if skip_prefix and self.prefix else self.items
        return "".join(item if isinstance(item, str) else item.fill(values) for item in items)


# --- identities -------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def install_id(secret: str) -> str:
    """A short id of this installation: Message-IDs of two installations never meet."""
    return hmac.new(purpose_key(secret, "install-id"), b"install", hashlib.sha256).hexdigest()[:8]


def message_id(secret: str, edition_id: int, reader_id: int, domain: str, scope: str = "") -> str:
    """The same (edition, reader) (one ledger row) always gets the same Message-ID."""
    scope = scope or f"e{edition_id}"
    sig = hmac.new(secret.encode(), f"{scope}:{reader_id}".encode(), hashlib.sha256)
    return f"<{scope}.r{reader_id}.{install_id(secret)}.{sig.hexdigest()[:12]}@{domain}>"


def one_off_message_id(secret: str, domain: str) -> str:
    """For messages no ledger row names (test sends, confirmations): never repeats."""
    return f"<o{secrets.token_hex(10)}.{install_id(secret)}@{domain}>"


def domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def list_id(name: str, slug: str, domain: str) -> str:
    """RFC 2919 `List-Id` value: `Name <slug.domain>`."""
    label = re.sub(r"[^a-z0-9-]+", "-", slug.lower()).strip("-") or "list"
    phrase = header_safe(name).replace('"', "").replace("\\", "")
    return f'"{phrase}" <{label}.{domain}>' if phrase else f"<{label}.{domain}>"


def verp_address(return_path: str, secret: str, delivery_id: int) -> str:
    """`bounces@d` -> `bounces+d<id>-<sig>@d`: a bounce names its delivery row,
    and nobody can forge one naming a row of their choice."""
    local, _, domain = return_path.rpartition("@")
    return f"{local}+{verp_token(secret, delivery_id)}@{domain}"


def verp_token(secret: str, delivery_id: int) -> str:
    sig = hmac.new(purpose_key(secret, "verp"), str(delivery_id).encode(), hashlib.sha256)
    return f"d{delivery_id}-{sig.hexdigest()[:12]}"


_VERP_RE = re.compile(r"d([0-9]{1,18})-([0-9a-f]{12})")


def delivery_of_token(secret: str, token: str) -> int | None:
    """The delivery id a VERP token names, or None when it is not ours."""
    match = _VERP_RE.fullmatch(token.lower())
    if not match:
        return None
    delivery_id = int(match.group(1))
    return delivery_id if hmac.compare_digest(verp_token(secret, delivery_id), match.group(0)) \
        else None


# --- messages ---------------------------------------------------------------------


@dataclass
class Recipient:
    reader_id: int
    email: str
    name: str
    unsubscribe_url: str
    preferences_url: str
    # Put in the subject of the List-Unsubscribe mailto: mail to it names the reader.
    unsubscribe_token: str = ""
    token_nonce: str = ""  # the reader's, signed into tracking links
    # Values only some emails carry (the re-engagement email's `keep_url`).
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def values(self) -> dict[str, str]:
        name = header_safe(self.name)
        return {
            **self.extra,
            "name": name,
            "email": self.email,
            "unsubscribe_url": self.unsubscribe_url,
            "preferences_url": self.preferences_url,
            "greeting": f"Hello {name}," if name else "Hello,",
            "subscribed_note": subscribed_note(self.email),
        }


def subscribed_note(email: str) -> str:
    """Why a reader gets the email (the archive's web copy has no reader: no note)."""
    return f"You receive this because you subscribed as {email}." if email else ""


class MessageSkeleton:
    """Everything about one compiled email that does not depend on the reader.

    `one_off`: a message to one person no ledger row names (confirmations, test
    sends): `Auto-Submitted: auto-generated` and a Message-ID that never repeats.
    `list_headers`: List-Unsubscribe(-Post); by default for everything but one-off mail.
    `id_scope`: Message-IDs are `<scope>.r<reader>...`; by default `e<edition>`."""

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
        list_id: str = "",
        feedback_id: str = "",
        one_off: bool = False,
        list_headers: bool | None = None,
        id_scope: str = "",
    ) -> None:
        self.secret = secret
        self.edition_id = edition_id
        self.domain = domain_of(mail_from)
        self.unsubscribe_mailto = header_safe(unsubscribe_mailto)
        self.dkim = dkim
        self.one_off = one_off
        self.list_headers = not one_off if list_headers is None else list_headers
        self.id_scope = id_scope
        self.boundary = f"=_mailer_{secrets.token_hex(12)}"  # '=' never occurs in QP text
        shared: list[tuple[str, str]] = [("From", mail_from), ("Subject", subject)]
        if reply_to:
            shared.append(("Reply-To", reply_to))
        if one_off:
            shared.append(("Auto-Submitted", "auto-generated"))
        if self.list_headers:
            shared.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        if list_id:
            shared.append(("List-Id", list_id))
        if feedback_id:
            shared.append(("Feedback-ID", feedback_id))
        shared.extend((extra_headers or {}).items())
        lines = [fold_header(k, v) for k, v in shared]
        lines.append("MIME-Version: 1.0" + CRLF)
        lines.append(f'Content-Type: multipart/alternative; boundary="{self.boundary}"' + CRLF)
        self.shared_headers = "".join(lines)
        # Canonical (DKIM relaxed) form of the shared headers, made once.
        self.canonical: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line[:-2].partition(":")
            self.canonical.setdefault(name.lower(), []).append(canonical_header(name, value))
        self.text = QPBody(FillTemplate(text), width=TEXT_WIDTH)
        self.html = QPBody(FillTemplate(html))
        self.tracked = any(
            isinstance(item, _Line) and any(f == "track" for _, f in item.fields)
            for item in self.html.items
        )  # MAILER_TRACKING
        self.body_prefix = (
            "This is a multi-part message in MIME format."
            f"{CRLF}--{self.boundary}{CRLF}"
            f'Content-Type: text/plain; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}" + self.text.prefix
        )
        self.html_head = (
            f"{CRLF}--{self.boundary}{CRLF}"
            f'Content-Type: text/html; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        )
        self.tail = f"{CRLF}--{self.boundary}--{CRLF}"
        self._prefix_bytes = self.body_prefix.encode("ascii")
        self._prefix_hash = hashlib.sha256(self._prefix_bytes)
        self._date_second = -1
        self._date = ""

    def _date_header(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = format_datetime(datetime.fromtimestamp(now, UTC))
        return self._date

    def message_id(self, reader_id: int) -> str:
        if self.one_off:
            return one_off_message_id(self.secret, self.domain)
        return message_id(self.secret, self.edition_id, reader_id, self.domain, self.id_scope)

    def render(self, rcpt: Recipient) -> bytes:
        return self.render_later(rcpt)()

    def render_later(self, rcpt: Recipient) -> Callable[[], bytes]:
        """The message for one reader as a function that gives its bytes. All but
        the DKIM signature is done here; the signature (RSA in OpenSSL, which lets
        other threads run) when it is called, so a thread can make it while the
        caller waits for the relay and the database. Without DKIM the bytes are
        ready and the call only returns them."""
        values = rcpt.values()
        if self.tracked:
            values["track"] = track_value(self.secret, self.edition_id, rcpt.reader_id,
                                          rcpt.token_nonce)
        unsubscribe = ""
        if self.list_headers:
            unsubscribe = f"<{quote(header_safe(rcpt.unsubscribe_url), safe=_URL_SAFE)}>"
            if self.unsubscribe_mailto:
                subject = quote(f"unsubscribe {rcpt.unsubscribe_token}".strip())
                unsubscribe += f", <mailto:{self.unsubscribe_mailto}?subject={subject}>"
        return self._values_later(rcpt.name, rcpt.email, values,
                                  self.message_id(rcpt.reader_id), unsubscribe)

    def render_values(self, to_name: str, to_email: str, values: Mapping[str, str],
                      msg_id: str, list_unsubscribe: str = "") -> bytes:
        """The message for one reader, from plain (unencoded, unescaped) values."""
        return self._values_later(to_name, to_email, values, msg_id, list_unsubscribe)()

    def _values_later(self, to_name: str, to_email: str, values: Mapping[str, str],
                      msg_id: str, list_unsubscribe: str = "") -> Callable[[], bytes]:
        html_values = {k: qp_value(v) for k, v in escape_values(values).items()}
        date = self._date_header()
        to = address_header(to_name, to_email)
        head = f"Date: {date}{CRLF}Message-ID: {msg_id}{CRLF}To: {to}{CRLF}"
        if list_unsubscribe:
            head += f"List-Unsubscribe: {list_unsubscribe}{CRLF}"
        head += self.shared_headers
        rest = (self.text.fill(values, skip_prefix=True) + self.html_head
                + self.html.fill(html_values) + self.tail).encode("ascii")
        if self.dkim is None:
            data = (head + CRLF).encode("ascii") + self._prefix_bytes + rest
            return lambda: data
        digest = self._prefix_hash.copy()
        digest.update(rest)
        fields = dict(self.canonical)
        fields["date"] = [canonical_header("date", date)]
        fields["message-id"] = [canonical_header("message-id", msg_id)]
        fields["to"] = [canonical_header("to", to)]
        if list_unsubscribe:
            fields["list-unsubscribe"] = [canonical_header("list-unsubscribe", list_unsubscribe)]
        body_hash = _b64(digest.digest())
        dkim, prefix = self.dkim, self._prefix_bytes

        def signed() -> bytes:
            signature = dkim.signature_headers(fields, body_hash)
            return (signature + head + CRLF).encode("ascii") + prefix + rest

        return signed


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
