"""Events of the mailer's life (`reader.confirmed`, `edition.started`, ...), recorded
in the transaction of the change they report.

`emit_event(session, type, data)` does two things, both inside the caller's
transaction, so an event exists exactly when its change was committed:

- writes one webhook outbox row per enabled endpoint that wants the event (one
  `INSERT … SELECT`; nothing when no endpoint wants it) and wakes the webhook
  task after the commit;
- runs the in-process handlers registered with `on_event` (automations plan
  their steps this way). Handlers live in packages above this one; registering
  inverts the dependency, so the readers, editions and delivery services can
  report events without knowing who listens.

It lives here because `readers` is the lowest package with models: every
service that emits events can import it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, insert, literal, select

from mailer.jobs import TaskName, wake_on_commit
from mailer.models import WebhookEndpoint, WebhookEvent, WebhookMessage, WebhookStatus, utcnow
from mailer.models.base import DbSession, UTCDateTime

Handler = Callable[[DbSession, str, dict[str, Any], datetime], None]
_handlers: dict[str, list[Handler]] = {}

__all__ = ["WebhookEvent", "emit_event", "event_body", "new_message_id", "on_event"]


def on_event(event_type: str, handler: Handler) -> None:
    """Run `handler(session, type, data, now)` in the transaction of every such event."""
    if handler not in _handlers.setdefault(event_type, []):
        _handlers[event_type].append(handler)


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def event_body(event_type: str, data: dict[str, Any], when: datetime) -> str:
    """The JSON body of a webhook call (Standard Webhooks payload shape)."""
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"type": event_type, "timestamp": stamp, "data": data},
                      separators=(",", ":"), sort_keys=True, default=str)


def _outbox_statement() -> Any:
    endpoints = cast(Table, WebhookEndpoint.__table__)
    messages = cast(Table, WebhookMessage.__table__)
    now = bindparam("now", type_=UTCDateTime())
    rows = select(
        endpoints.c.id, bindparam("msg_id", type_=String), bindparam("event_type", type_=String),
        bindparam("body", type_=String), literal(WebhookStatus.PENDING, String), literal(0),
        now, literal("", String), literal("", String), now,
    ).where(endpoints.c.enabled.is_(True),
            # Event names hold no LIKE wildcards ('%', '_').
            endpoints.c.event_types.like(bindparam("pattern", type_=String)))
    return insert(messages).from_select(
        ["endpoint_id", "msg_id", "event_type", "body", "status", "attempts", "next_attempt_at",
         "claimed_by", "last_error", "created_at"], rows).returning(messages.c.id)


_OUTBOX = _outbox_statement()


def emit_event(session: DbSession, event_type: str, data: dict[str, Any],
               now: datetime | None = None) -> None:
    """Record `event_type` with `data` (JSON-able) in the caller's transaction."""
    now = now or utcnow()
    written = session.execute(_OUTBOX, {
        "msg_id": new_message_id(), "event_type": event_type, "now": now,
        "body": event_body(event_type, data, now), "pattern": f"%,{event_type},%",
    }).first()  # rowcount of INSERT … SELECT is -1 on psycopg: RETURNING tells
    if written is not None:
        wake_on_commit(session, TaskName.SEND_WEBHOOKS)
    for handler in _handlers.get(event_type, ()):
        handler(session, event_type, data, now)
