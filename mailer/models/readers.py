"""Readers, their topics, suppressions and the events of their history."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum, nonmember
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.models.base import Base, utcnow

reader_topics = Table(
    "reader_topics",
    Base.metadata,
    Column("reader_id", ForeignKey("readers.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_reader_topics_topic_id", "topic_id"),
)


class ReaderStatus(StrEnum):
    PENDING = "pending"  # signed up, not yet confirmed
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class EngagementState(StrEnum):
    """Where a reader stands in the inactive-reader policy (MAILER_INACTIVE_MONTHS)."""

    NONE = ""  # never asked
    ASKED = "asked"  # the one re-engagement email is planned or sent
    PAUSED = "paused"  # no answer within the grace period: deliveries paused
    KEPT = "kept"  # they said "keep me" (or resumed): never asked again


class Frequency(StrEnum):
    IMMEDIATE = "immediate"  # every edition, as published
    DAILY = "daily"
    WEEKLY = "weekly"
    PAUSED = "paused"
    ALL = nonmember(("immediate", "daily", "weekly", "paused"))


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def new_token_nonce() -> str:
    return secrets.token_hex(8)


class Reader(Base):
    __tablename__ = "readers"
    __table_args__ = (
        # The confirmation drain's read: pending readers by request time only.
        Index("ix_readers_confirmation_due", "confirmation_sent_at",
              postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")),
        # Links and tokens name readers by id: an erased reader's id is never handed
        # to the next subscriber (SQLite would otherwise reuse the highest one).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # `email` keeps what the reader typed (normalised domain); `email_key` is the
    # lower-cased form that makes addresses unique case-insensitively everywhere.
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), default=ReaderStatus.PENDING, index=True)
    frequency: Mapped[str] = mapped_column(String(20), default=Frequency.IMMEDIATE)
    # Changing it invalidates every confirmation link issued before.
    confirm_nonce: Mapped[str] = mapped_column(String(32), default="")
    # Signed into every link that never expires (unsubscribe, preferences,
    # tracking): it dies with the row, and the links with it. Empty only for
    # readers from before it existed, whose links are signed as they always were.
    token_nonce: Mapped[str] = mapped_column(String(32), default=new_token_nonce,
                                             server_default="")
    consent_at: Mapped[datetime | None]
    consent_source: Mapped[str] = mapped_column(String(200), default="")
    consent_ip: Mapped[str] = mapped_column(String(64), default="")
    confirmation_sent_at: Mapped[datetime | None]  # when the last email was requested
    # Equal to confirmation_sent_at once a worker took that request: a re-delivered
    # task (brokers are at-least-once) finds it taken and sends nothing.
    confirmation_mailed_at: Mapped[datetime | None]
    # An address change waits here until the new address is confirmed.
    pending_email: Mapped[str | None] = mapped_column(String(320))
    email_change_sent_at: Mapped[datetime | None]
    email_change_mailed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    confirmed_at: Mapped[datetime | None]
    # IANA name ("Europe/Berlin"); empty: the publication's default.
    timezone: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # Values the publisher's own systems keep about the reader (API, CSV import): strings,
    # numbers and booleans by name. Audiences can select on them.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    unsubscribed_at: Mapped[datetime | None]
    # "Pause for 30 days": frequency is paused until this moment, then the tick
    # puts back `resume_frequency` (what the reader had chosen before).
    paused_until: Mapped[datetime | None] = mapped_column(index=True)
    resume_frequency: Mapped[str] = mapped_column(String(20), default="", server_default="")
    # "Email me a new link": requested / taken by a worker (same pattern as confirmations).
    link_sent_at: Mapped[datetime | None]
    link_mailed_at: Mapped[datetime | None]
    # Opted in to breaking-news alerts (single articles sent at once) for their topics.
    # Server default only: the signup INSERT … SELECT (subscriptions.py) lists no value for it.
    alerts: Mapped[bool] = mapped_column(server_default=text("false"))
    # Inactive-reader policy (EngagementState) and when that state was entered.
    engagement_state: Mapped[str] = mapped_column(String(20), default="", server_default="")
    engagement_changed_at: Mapped[datetime | None]

    topics: Mapped[list[Topic]] = relationship(secondary=reader_topics, lazy="selectin")

    @property
    def is_active(self) -> bool:
        return self.status == ReaderStatus.CONFIRMED and self.frequency != Frequency.PAUSED


class SuppressionReason:
    """Why an address is suppressed. Bounces and complaints use their own words
    ("bounce", "hard-bounce", "complaint"...): only ERASED is ever lifted."""

    ERASED = "erased"  # the reader asked: a new double opt-in through the form may lift it


class Suppression(Base):
    """Addresses that must never be mailed again, kept as a hash (erasure-safe).
    Only an `erased` entry can be lifted, and only by the reader confirming a new
    signup from the form; bounces and complaints stay for good."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReaderEvent(Base):
    """Append-only history: signups, confirmations, bounces, opens, clicks..."""

    __tablename__ = "reader_events"
    __table_args__ = (
        Index("ix_reader_events_edition_kind", "edition_id", "kind"),
        # A pixel hit asks "has this reader opened this edition before?": one probe
        # of this small partial index, whatever the size of the edition.
        Index("ix_reader_events_first_open", "edition_id", "reader_id", "kind",
              postgresql_where=text("kind = 'open' OR kind = 'open-machine'"),
              sqlite_where=text("kind = 'open' OR kind = 'open-machine'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int | None] = mapped_column(
        ForeignKey("readers.id", ondelete="SET NULL"), index=True
    )
    edition_id: Mapped[int | None] = mapped_column(ForeignKey("editions.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(30))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# Reader search is an email prefix: `email_key LIKE 'abc%'` needs pattern ops on
# PostgreSQL when the database collation is not C.
readers_email_prefix = Index("ix_readers_email_key_prefix", Reader.email_key,
                             postgresql_ops={"email_key": "varchar_pattern_ops"})
# Charts: events of a kind per day.
reader_events_kind_time = Index("ix_reader_events_kind_created_at", ReaderEvent.kind,
                                ReaderEvent.created_at)
