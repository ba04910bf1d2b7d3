"""Outgoing webhooks: endpoints, and the outbox of calls owed to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, utcnow


class WebhookEvent:
    READER_SUBSCRIBED = "reader.subscribed"
    READER_CONFIRMED = "reader.confirmed"
    READER_UNSUBSCRIBED = "reader.unsubscribed"
    READER_ERASED = "reader.erased"
    EDITION_STARTED = "edition.started"
    EDITION_FINISHED = "edition.finished"
    DELIVERY_FAILED = "delivery.failed"
    DELIVERY_BOUNCED = "delivery.bounced"
    DELIVERY_COMPLAINED = "delivery.complained"
    ALL = (READER_SUBSCRIBED, READER_CONFIRMED, READER_UNSUBSCRIBED, READER_ERASED,
           EDITION_STARTED, EDITION_FINISHED, DELIVERY_FAILED, DELIVERY_BOUNCED,
           DELIVERY_COMPLAINED)


class WebhookStatus:
    PENDING = "pending"
    CLAIMED = "claimed"
    RETRY = "retry"
    SENT = "sent"
    FAILED = "failed"  # retries exhausted
    DUE = (PENDING, RETRY)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))  # "whsec_" + base64
    # ",reader.confirmed,edition.started,": one LIKE in the emitting INSERT … SELECT.
    event_types: Mapped[str] = mapped_column(String(1000))
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str] = mapped_column(Text, default="")
    failing_since: Mapped[datetime | None]  # first failure after the last success
    last_success_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def events(self) -> list[str]:
        return [e for e in self.event_types.split(",") if e]


class WebhookMessage(Base):
    """One event owed to one endpoint, written in the transaction of the change it
    reports. `msg_id` (the `webhook-id` header) is shared by every endpoint's copy
    of the event and never changes between attempts; `body` is the exact JSON sent."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        Index("ix_webhook_messages_status_due", "status", "next_attempt_at"),
        Index("ix_webhook_messages_endpoint_id", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    msg_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=WebhookStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_at: Mapped[datetime | None]
    last_status: Mapped[int | None]  # HTTP status of the last attempt
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
