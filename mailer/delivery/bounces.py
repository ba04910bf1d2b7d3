"""Bounces and complaints reported after delivery, by webhook.

Two formats come in: a generic JSON one (for relays and scripts) and Amazon SES
notifications delivered by SNS. Hard bounces and complaints suppress the
address (kept as a hash, so it is never re-imported); soft bounces are only
counted. Applying the same event twice changes nothing the second time.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from mailer.common import safejson
from mailer.common.errors import ValidationError
from mailer.delivery.sns import is_sns_url
from mailer.models import Reader, ReaderEvent, ReaderStatus, utcnow
from mailer.models.base import DbSession
from mailer.readers.events import emit_event
from mailer.readers.subscriptions import is_suppressed, suppress

HARD_BOUNCE = "hard_bounce"
SOFT_BOUNCE = "soft_bounce"
COMPLAINT = "complaint"
MAX_EVENTS = 1000
_EMAIL_RE = re.compile(r"[^@\s<>\"]{1,64}@[^@\s<>\"]{1,255}")
# SNS only ever calls back from its own HTTPS hosts.


@dataclass(frozen=True)
class BounceEvent:
    email: str
    kind: str  # HARD_BOUNCE, SOFT_BOUNCE or COMPLAINT
    detail: str = ""


def _email(value: object, field: str) -> str:
    if not isinstance(value, str) or not _EMAIL_RE.fullmatch(value.strip()):
        raise ValidationError("An event names no valid email address.", {field: "invalid email"})
    return value.strip()


def _text(value: object, limit: int = 300) -> str:
    return value[:limit] if isinstance(value, str) else ""


def parse_json(raw: bytes) -> Any:
    try:
        return safejson.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("The body is not valid JSON.", {"body": "invalid JSON"}) from exc


def parse_generic(payload: object) -> list[BounceEvent]:
    """`{"events": [{"type": "bounce"|"complaint", "email": ..., "bounce_type":
    "hard"|"soft", "reason": ...}]}`, or one such event on its own."""
    if not isinstance(payload, Mapping):
        raise ValidationError("The body must be a JSON object.", {"body": "not an object"})
    if "events" in payload:
        items = payload["events"]
    else:
        items = [payload]
    if not isinstance(items, list) or not items:
        raise ValidationError("`events` must be a non-empty list.", {"events": "must be a list"})
    if len(items) > MAX_EVENTS:
        raise ValidationError(f"At most {MAX_EVENTS} events per request.", {"events": "too many"})
    events = []
    for index, item in enumerate(items):
        field = f"events[{index}]"
        if not isinstance(item, Mapping):
            raise ValidationError("Each event must be a JSON object.", {field: "not an object"})
        kind = item.get("type")
        email = _email(item.get("email"), f"{field}.email")
        if kind == "complaint":
            events.append(BounceEvent(email, COMPLAINT, _text(item.get("reason"))))
        elif kind == "bounce":
            bounce_type = item.get("bounce_type", "hard")
            if bounce_type not in ("hard", "soft"):
                raise ValidationError("bounce_type must be `hard` or `soft`.",
                                      {f"{field}.bounce_type": "must be hard or soft"})
            events.append(BounceEvent(email, HARD_BOUNCE if bounce_type == "hard" else SOFT_BOUNCE,
                                      _text(item.get("reason"))))
        else:
            raise ValidationError("type must be `bounce` or `complaint`.",
                                  {f"{field}.type": "must be bounce or complaint"})
    return events


def parse_ses(message: object) -> list[BounceEvent]:
    """An SES notification (the `Message` of an SNS notification), either the
    notification format (`notificationType`) or an event-publishing one (`eventType`)."""
    if not isinstance(message, Mapping):
        raise ValidationError("The SES message must be a JSON object.", {"Message": "not an object"})
    kind = message.get("notificationType") or message.get("eventType")
    if kind == "Bounce":
        bounce = message.get("bounce")
        if not isinstance(bounce, Mapping):
            raise ValidationError("A Bounce notification needs `bounce`.", {"bounce": "missing"})
        hard = bounce.get("bounceType") == "Permanent"
        recipients = bounce.get("bouncedRecipients")
        label = f"{_text(bounce.get('bounceType'), 40)}/{_text(bounce.get('bounceSubType'), 40)}"
        field = "bounce.bouncedRecipients"
        event_kind = HARD_BOUNCE if hard else SOFT_BOUNCE
    elif kind == "Complaint":
        complaint = message.get("complaint")
        if not isinstance(complaint, Mapping):
            raise ValidationError("A Complaint notification needs `complaint`.",
                                  {"complaint": "missing"})
        recipients = complaint.get("complainedRecipients")
        label = _text(complaint.get("complaintFeedbackType"), 60)
        field = "complaint.complainedRecipients"
        event_kind = COMPLAINT
    elif isinstance(kind, str):
        return []  # Delivery, Send, Open...: nothing to do here
    else:
        raise ValidationError("Not an SES notification.", {"notificationType": "missing"})
    if not isinstance(recipients, list) or not recipients or len(recipients) > MAX_EVENTS:
        raise ValidationError("The notification lists no recipients.", {field: "missing"})
    events = []
    for index, item in enumerate(recipients):
        address = item.get("emailAddress") if isinstance(item, Mapping) else None
        detail = label
        if isinstance(item, Mapping) and item.get("diagnosticCode"):
            detail = f"{label}: {_text(item.get('diagnosticCode'), 200)}"
        events.append(BounceEvent(_email(address, f"{field}[{index}].emailAddress"), event_kind,
                                  detail))
    return events


def apply_events(session: DbSession, events: list[BounceEvent], source: str) -> dict[str, int]:
    """Suppress hard bounces and complaints; commits. Returns counts by outcome."""
    counts = {"suppressed": 0, "already_suppressed": 0, "soft": 0}
    for event in events:
        if event.kind == SOFT_BOUNCE:
            counts["soft"] += 1
            continue
        if is_suppressed(session, event.email):
            counts["already_suppressed"] += 1
            continue
        reason = "complaint" if event.kind == COMPLAINT else "bounce"
        suppress(session, event.email, reason)
        status = ReaderStatus.COMPLAINED if event.kind == COMPLAINT else ReaderStatus.BOUNCED
        reader_id = session.scalar(select(Reader.id).where(Reader.email_key == event.email.lower()))
        if reader_id is not None:
            session.execute(update(Reader).where(Reader.id == reader_id)
                            .values(status=status, unsubscribed_at=utcnow()))
            session.add(ReaderEvent(reader_id=reader_id, kind=reason,
                                    detail={"source": source, "detail": event.detail}))
        emit_event(session, "delivery.complained" if event.kind == COMPLAINT else "delivery.bounced",
                   {"email": event.email, "reader_id": reader_id, "source": source})
        session.flush()  # the next event for the same address sees this suppression
        counts["suppressed"] += 1
    session.commit()
    return counts


def fetch_url(url: str) -> int:
    """GET an SNS URL (subscription confirmation); tests replace this function."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - https SNS host only
        return int(response.status)


def confirm_sns_subscription(envelope: Mapping[str, Any],
                             fetch: Callable[[str], int] | None = None) -> str:
    url = envelope.get("SubscribeURL")
    if not is_sns_url(url):
        raise ValidationError("SubscribeURL is not an Amazon SNS https URL.",
                              {"SubscribeURL": "not an SNS URL"})
    try:
        status = (fetch or fetch_url)(str(url))
    except OSError as exc:
        raise ValidationError(f"Could not reach SNS to confirm: {exc}",
                              {"SubscribeURL": "unreachable"}, status=502) from exc
    if status != 200:
        raise ValidationError(f"SNS answered {status} to the confirmation.",
                              {"SubscribeURL": f"HTTP {status}"}, status=502)
    return str(envelope.get("TopicArn", ""))
