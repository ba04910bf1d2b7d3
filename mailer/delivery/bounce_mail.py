"""The bounce mailbox: DSNs (RFC 3464), ARF complaints (RFC 5965) and mail to the
unsubscribe address, read by a beat task (`poll_bounce_mailbox`).

Each message is classified, its effect committed, and only then is it deleted
from the server; a message that cannot be used (junk, truncated, too big, a
forged VERP token, nothing of ours) is set aside as a `.eml` file with the
reason in `instance/bounce-rejects/`, then deleted. Auto-replies are dropped.
Nothing here suppresses an address unless the report names a delivery of ours
or a reader we mailed.
"""

from __future__ import annotations

import email
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from pathlib import Path

from sqlalchemy import select, update

from mailer.common.tokens import Purpose, TokenError, Tokens
from mailer.config import Settings
from mailer.delivery.bounces import COMPLAINT, HARD_BOUNCE, BounceEvent, apply_events
from mailer.delivery.mailbox import Fetched, Mailbox, MailboxError, open_mailbox
from mailer.mail.messages import delivery_of_token, message_id
from mailer.models import Delivery, DeliveryStatus, Reader, ReaderEvent, utcnow
from mailer.models.base import DbSession
from mailer.readers.links import nonce_lookup
from mailer.readers.subscriptions import unsubscribe

log = logging.getLogger(__name__)

SOFT_BOUNCE_WINDOW = timedelta(days=30)
_VERP_RE = re.compile(r"\+(d[0-9]{1,18}-[0-9a-fA-F]{12})@")
_OUR_ID_RE = re.compile(r"<(e[0-9]+)\.r([0-9]+)\.[0-9a-f]{8}\.[0-9a-f]{12}@[^>]+>")
_TOKEN_RE = re.compile(r"r[0-9a-f]{1,15}\.[A-Za-z0-9_-]{22}")
_AUTO_SUBJECT = re.compile(r"^\s*(out of (the )?office|automatic reply|auto[- ]?reply|"
                           r"abwesenheit|absence|vacation|away from)", re.IGNORECASE)


@dataclass
class PollReport:
    seen: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    unsubscribed: int = 0
    ignored: int = 0
    set_aside: int = 0
    error: str = ""
    reasons: list[str] = field(default_factory=list)

    def json(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "reasons"}


class Junk(Exception):
    """The message is set aside with this reason."""


@dataclass
class Outcome:
    kind: str  # hard, soft, complaint, unsubscribe, ignored
    detail: str = ""


def _parse(raw: bytes) -> Message:
    try:
        # compat32 never interprets address headers, so `To: a:;@x` cannot raise here.
        return email.message_from_bytes(raw, policy=compat32)
    except Exception as exc:  # the parser has raised odd types on hostile input
        raise Junk(f"unparseable: {type(exc).__name__}") from exc


def _header(msg: Message, name: str) -> str:
    try:
        values = msg.get_all(name) or []
        return " ".join(str(v) for v in values)
    except Exception:
        return ""


def _is_auto_reply(msg: Message) -> bool:
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and auto != "no" and not _is_report(msg):
        return True
    if _header(msg, "X-Autoreply") or _header(msg, "X-Autorespond"):
        return True
    if _header(msg, "Precedence").lower().strip() in ("auto_reply",):
        return True
    return bool(_AUTO_SUBJECT.match(_header(msg, "Subject")))


def _is_report(msg: Message) -> bool:
    return msg.get_content_type() == "multipart/report"


def _report_parts(msg: Message, content_type: str) -> list[Message]:
    return [part for part in msg.walk() if part.get_content_type() == content_type]


def _fields(part: Message) -> list[dict[str, str]]:
    """The header groups of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    groups: list[dict[str, str]] = []
    if isinstance(payload, list):  # the email package parsed the groups as messages
        for sub in payload:
            if isinstance(sub, Message):
                groups.append({k.lower(): str(v) for k, v in sub.items()})
        return groups
    text = payload if isinstance(payload, str) else ""
    for block in re.split(r"\r?\n\s*\r?\n", text):
        sub = email.message_from_string(block, policy=compat32)
        groups.append({k.lower(): str(v) for k, v in sub.items()})
    return groups


def _address(value: str) -> str:
    """`rfc822; ada@example.org` -> `ada@example.org`."""
    value = value.partition(";")[2] if ";" in value else value
    return parseaddr(value.strip())[1].strip().lower()


def _original_headers(msg: Message) -> Message | None:
    """The returned message (or its headers) inside a report."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/rfc822-headers", "text/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            if isinstance(payload, str):
                return email.message_from_string(payload, policy=compat32)
    return None


class BounceReader:
    """Applies one mailbox message to the database (and commits)."""

    def __init__(self, session: DbSession, settings: Settings, tokens: Tokens) -> None:
        self.session = session
        self.settings = settings
        self.tokens = tokens
        mailto = parseaddr(settings.unsubscribe_mailto)[1].lower()
        self.unsub_local, _, self.unsub_domain = mailto.rpartition("@")

    # --- finding our delivery ---------------------------------------------------------

    def _verp_delivery(self, msg: Message, original: Message | None) -> int | None:
        """The delivery a VERP address in the report names; Junk when one is forged."""
        places = [_header(msg, h) for h in ("Delivered-To", "X-Original-To", "Envelope-To",
                                             "To", "X-Envelope-To")]
        if original is not None:
            places.append(_header(original, "Return-Path"))
        forged = False
        for place in places:
            for token in _VERP_RE.findall(place):
                delivery_id = delivery_of_token(self.settings.secret_key, token)
                if delivery_id is not None:
                    return delivery_id
                forged = True
        if forged:
            raise Junk("VERP token with a wrong signature")
        return None

    def _delivery_by_message_id(self, original: Message | None) -> int | None:
        if original is None:
            return None
        match = _OUR_ID_RE.search(_header(original, "Message-ID"))
        if not match:
            return None
        scope, reader_id = match.group(1), int(match.group(2))
        edition_id = int(scope[1:])
        expected = message_id(self.settings.secret_key, edition_id, reader_id, "x")
        if expected.split("@")[0] != match.group(0).split("@")[0]:
            return None  # not signed by us
        return self.session.scalar(select(Delivery.id).where(
            Delivery.edition_id == edition_id, Delivery.reader_id == reader_id))

    def _reader_by_address(self, address: str) -> int | None:
        if not address:
            return None
        return self.session.scalar(select(Reader.id).where(Reader.email_key == address.lower()))

    # --- kinds ------------------------------------------------------------------------

    def apply(self, raw: bytes, complete: bool = True) -> Outcome:
        if not complete:
            raise Junk("too big to be a bounce; only its headers were read")
        msg = _parse(raw)
        if msg.defects and not msg.keys():
            raise Junk("no headers")
        report_type = (msg.get_param("report-type", header="content-type") or "")
        report_type = str(report_type).lower()
        if _is_report(msg) and report_type == "feedback-report":
            return self._complaint(msg)
        if _is_report(msg) and report_type == "delivery-status":
            return self._dsn(msg)
        if self._is_unsubscribe(msg):
            return self._unsubscribe(msg)
        if _is_auto_reply(msg):
            return Outcome("ignored", "auto-reply")
        raise Junk("not a delivery report, complaint or unsubscribe request")

    def _dsn(self, msg: Message) -> Outcome:
        parts = _report_parts(msg, "message/delivery-status")
        if not parts:
            raise Junk("delivery report without a message/delivery-status part")
        groups = _fields(parts[0])
        recipients = [g for g in groups[1:] if "action" in g or "status" in g] or \
            [g for g in groups if "action" in g]
        if not recipients:
            raise Junk("delivery report names no recipient")
        failed = [g for g in recipients if g.get("action", "").strip().lower() in
                  ("failed", "delayed")]
        if not failed:
            return Outcome("ignored", "delivery report without a failure")
        group = failed[0]
        status = group.get("status", "").strip()
        action = group.get("action", "").strip().lower()
        hard = action == "failed" and status.startswith("5")
        original = _original_headers(msg)
        delivery_id = self._verp_delivery(msg, original) or self._delivery_by_message_id(original)
        reported = _address(group.get("original-recipient", "")) or \
            _address(group.get("final-recipient", ""))
        delivery = self.session.get(Delivery, delivery_id) if delivery_id else None
        if delivery is not None:
            reader = self.session.get(Reader, delivery.reader_id)
        else:
            reader_id = self._reader_by_address(reported)
            reader = self.session.get(Reader, reader_id) if reader_id else None
        if reader is None:
            raise Junk("the report names no delivery or reader of ours")
        detail = f"{status} {group.get('diagnostic-code', '').strip()}"[:300]
        if hard:
            if delivery is not None:
                self.session.execute(update(Delivery).where(Delivery.id == delivery.id).values(
                    status=DeliveryStatus.BOUNCED, error=f"bounced: {detail}"[:500]))
            apply_events(self.session, [BounceEvent(reader.email, HARD_BOUNCE, detail)], "mailbox")
            return Outcome("hard", detail)
        return self._soft(reader, delivery, detail, msg)

    def _soft(self, reader: Reader, delivery: Delivery | None, detail: str, msg: Message
              ) -> Outcome:
        # The same report read twice (deleted after a crash) counts once.
        key = hashlib.sha256(_header(msg, "Message-ID").encode() or detail.encode()).hexdigest()[:16]
        since = utcnow() - SOFT_BOUNCE_WINDOW
        events = list(self.session.scalars(select(ReaderEvent.note).where(
            ReaderEvent.reader_id == reader.id, ReaderEvent.kind == "soft_bounce",
            ReaderEvent.created_at >= since)))
        if key not in events:
            self.session.add(ReaderEvent(reader_id=reader.id, kind="soft_bounce", note=key,
                                         edition_id=delivery.edition_id if delivery else None,
                                         detail={"source": "mailbox", "detail": detail}))
            events.append(key)
        limit = self.settings.soft_bounce_limit
        if limit > 0 and len(events) >= limit:
            apply_events(self.session, [BounceEvent(reader.email, HARD_BOUNCE,
                                                    f"{len(events)} soft bounces: {detail}")],
                         "mailbox")
            return Outcome("hard", f"repeated soft bounces: {detail}")
        self.session.commit()
        return Outcome("soft", detail)

    def _complaint(self, msg: Message) -> Outcome:
        parts = _report_parts(msg, "message/feedback-report")
        if not parts:
            raise Junk("complaint without a message/feedback-report part")
        report = _fields(parts[0])[0] if _fields(parts[0]) else {}
        feedback_type = report.get("feedback-type", "").strip().lower()
        if feedback_type and feedback_type not in ("abuse", "fraud", "other", "virus"):
            return Outcome("ignored", f"feedback type {feedback_type}")
        original = _original_headers(msg)
        delivery_id = self._verp_delivery(msg, original) or self._delivery_by_message_id(original)
        reader_id = None
        if delivery_id is not None:
            reader_id = self.session.scalar(select(Delivery.reader_id)
                                            .where(Delivery.id == delivery_id))
        if reader_id is None:
            reader_id = self._reader_by_address(_address(report.get("original-rcpt-to", "")))
        reader = self.session.get(Reader, reader_id) if reader_id else None
        if reader is None:
            raise Junk("the complaint names no delivery or reader of ours")
        unsubscribe(self.session, reader.id, source="complaint")
        apply_events(self.session, [BounceEvent(reader.email, COMPLAINT, feedback_type)],
                     "mailbox")
        return Outcome("complaint", feedback_type)

    def _is_unsubscribe(self, msg: Message) -> bool:
        if not self.unsub_local:
            return False
        for _, address in getaddresses([_header(msg, h) for h in
                                        ("To", "Delivered-To", "X-Original-To", "Cc")]):
            local, _, domain = address.lower().rpartition("@")
            if domain == self.unsub_domain and (local == self.unsub_local or
                                                local.startswith(self.unsub_local + "+")):
                return True
        return False

    def _unsubscribe(self, msg: Message) -> Outcome:
        candidates = _TOKEN_RE.findall(_header(msg, "Subject")) + _TOKEN_RE.findall(
            " ".join(_header(msg, h) for h in ("To", "Delivered-To", "X-Original-To")))
        for token in candidates:
            try:
                reader_id = self.tokens.reader_id(Purpose.UNSUBSCRIBE, token,
                                                  nonce_lookup(self.session))
            except TokenError:
                continue
            if unsubscribe(self.session, reader_id, source="mailto") is not None:
                return Outcome("unsubscribe", f"reader {reader_id}")
        raise Junk("unsubscribe mail without a valid reader token")


def set_aside(folder: Path, fetched: Fetched, reason: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(fetched.raw).hexdigest()[:20] + ".eml"
    path = folder / name
    clean = reason.replace("\r", " ").replace("\n", " ")
    note = f"X-Mailer-Set-Aside: {clean}\r\nX-Mailer-Size: {fetched.size}\r\n".encode()
    path.write_bytes(note + fetched.raw)
    return path


def poll_bounce_mailbox(session: DbSession, settings: Settings, tokens: Tokens,
                        mailbox: Mailbox | None = None) -> PollReport:
    """Read every message of the bounce mailbox once. Unreachable or refused: the
    error is logged and reported, and the next poll tries again."""
    report = PollReport()
    if mailbox is None:
        if not settings.bounce_mailbox:
            report.error = "MAILER_BOUNCE_MAILBOX is not set"
            return report
        try:
            mailbox = open_mailbox(settings.bounce_mailbox)
        except MailboxError as exc:
            report.error = str(exc)
            log.warning("bounce mailbox: %s (retried at the next poll)", exc)
            return report
    reader = BounceReader(session, settings, tokens)
    aside = settings.instance_path / "bounce-rejects"
    try:
        for fetched in mailbox.messages():
            report.seen += 1
            try:
                outcome = reader.apply(fetched.raw, fetched.complete)
                session.commit()
            except Junk as exc:
                session.rollback()
                set_aside(aside, fetched, str(exc))
                report.set_aside += 1
                report.reasons.append(str(exc))
                log.info("bounce mailbox: message %s set aside: %s", fetched.key, exc)
            except Exception:
                # A bug or a database error: keep the message for the next poll.
                session.rollback()
                log.exception("bounce mailbox: message %s not processed", fetched.key)
                continue
            else:
                counter = {"hard": "hard", "soft": "soft", "complaint": "complaints",
                           "unsubscribe": "unsubscribed"}.get(outcome.kind, "ignored")
                setattr(report, counter, getattr(report, counter) + 1)
            mailbox.delete(fetched.key)
    except (MailboxError, OSError) as exc:
        report.error = str(exc)
        log.warning("bounce mailbox: %s (retried at the next poll)", exc)
    except Exception as exc:  # imaplib/poplib protocol errors mid-poll
        report.error = f"{type(exc).__name__}: {exc}"
        log.warning("bounce mailbox: %s (retried at the next poll)", report.error)
    finally:
        mailbox.close()
    return report


def check_bounce_mailbox(settings: Settings) -> tuple[bool, str]:
    """For the console settings check: can we log in and open the folder?"""
    if not settings.bounce_mailbox:
        return False, "MAILER_BOUNCE_MAILBOX is not set: bounces are not read."
    try:
        mailbox = open_mailbox(settings.bounce_mailbox)
    except MailboxError as exc:
        return False, f"Cannot read the bounce mailbox: {exc}"
    mailbox.close()
    return True, "The bounce mailbox answers and the login works."


__all__ = ["PollReport", "check_bounce_mailbox", "poll_bounce_mailbox"]
