"""Editions of a digest and the delivery ledger: one row per (edition, reader)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum, nonmember
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.models.base import Base, utcnow
from mailer.models.content import Digest


class EditionStatus(StrEnum):
    DRAFT = "draft"  # waits for an editor's approval
    COMPILING = "compiling"
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"
    FAILED = "failed"  # compile or planning failed; `error` says why
    # still moving: a lane or the compiler may act on it
    OPEN = nonmember(("compiling", "sending", "paused"))


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # planned, waiting for a worker
    # planned for a later hour (reader-local schedules): becomes pending at
    # next_attempt_at; lanes never see it before then
    WAITING = "waiting"
    CLAIMED = "claimed"  # taken by a worker; SMTP not started for it yet
    SENDING = "sending"  # SMTP transaction under way: may have reached the server
    RETRY = "retry"  # temporary failure; tried again at next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # permanent failure (5xx) or retry deadline passed
    UNKNOWN = "unknown"  # connection lost after DATA: never re-sent automatically
    SKIPPED = "skipped"  # reader left or was suppressed after planning
    CANCELLED = "cancelled"
    BOUNCED = "bounced"  # sent, then a hard bounce came back (bounce mailbox)
    # planned, but waits for an A/B subject test's winner: lanes never claim it
    HELD = "held"
    # still to be done by a worker
    OUTSTANDING = nonmember(("waiting", "pending", "claimed", "sending", "retry", "held"))
    FINAL = nonmember(("sent", "failed", "unknown", "skipped", "cancelled", "bounced"))


class Edition(Base):
    __tablename__ = "editions"
    __table_args__ = (
        # Two scheduler ticks for the same slot can never both create an edition.
        UniqueConstraint("digest_id", "slot", name="uq_editions_digest_slot"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    # Scheduled slot ("2026-11-25T07:00Z") or a unique manual marker.
    slot: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=EditionStatus.COMPILING, index=True)
    subject: Mapped[str] = mapped_column(String(300), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    planned: Mapped[int] = mapped_column(default=0)
    # Articles chosen when the edition was started (variants may hold subsets).
    article_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Stories an editor took out of a draft: no reader gets them from this edition.
    dropped_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    test_only: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Bumped by workers as they go; the sweeper wakes editions that went quiet.
    last_activity_at: Mapped[datetime | None]
    # Why the engine paused the edition itself (circuit breaker); empty otherwise.
    paused_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Set while no SMTP relay accepts connections for this edition's lanes.
    relay_unreachable_since: Mapped[datetime | None]
    # The breaker's failure-rate window counts only attempts after this (a resume).
    breaker_reset_at: Mapped[datetime | None]
    # A pause that ends by itself (quiet hours): the sweeper resumes it then.
    resume_at: Mapped[datetime | None]
    # When the sweeper last queued lanes for this edition (tops up lost lanes).
    lanes_woken_at: Mapped[datetime | None]
    # An audience narrowing this edition only (a one-off send); the digest's own
    # audience applies as well. No FK: audiences are never deleted.
    segment_id: Mapped[int | None]
    # Reader-local sending: the wall-clock date and time ("2026-03-08T07:00") each
    # reader gets this edition at, in their own time zone; "" sends to everyone at once.
    local_send: Mapped[str] = mapped_column(String(16), default="", server_default="")

    digest: Mapped[Digest] = relationship(lazy="joined")


class EditionVariant(Base):
    """One compiled email for every reader with the same article selection.

    MJML is compiled once per variant; each reader's values are filled in later.
    """

    __tablename__ = "edition_variants"
    __table_args__ = (UniqueConstraint("edition_id", "selection_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    selection_key: Mapped[str] = mapped_column(String(64))
    article_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(String(300))
    html: Mapped[str] = mapped_column(Text)  # compiled, with reader placeholders
    text: Mapped[str] = mapped_column(Text)
    truncated: Mapped[int] = mapped_column(default=0)  # cards left out by the size guard
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Which articles each variant carried, queryable in SQL: planning excludes every
# article a reader already received (from any digest) with a join, not a loop.
variant_articles = Table(
    "edition_variant_articles",
    Base.metadata,
    Column("variant_id", ForeignKey("edition_variants.id", ondelete="CASCADE"), primary_key=True),
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_edition_variant_articles_article_id", "article_id"),
)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("edition_id", "reader_id"),
        Index("ix_deliveries_edition_status", "edition_id", "status"),
        Index("ix_deliveries_reader_id", "reader_id"),
        # Rows waiting for their reader's hour: the tick finds the due ones here.
        Index("ix_deliveries_waiting", "next_attempt_at",
              postgresql_where=text("status = 'waiting'"), sqlite_where=text("status = 'waiting'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    # No FK: erasing a reader keeps the anonymous ledger row.
    reader_id: Mapped[int]
    variant_id: Mapped[int | None] = mapped_column(
        ForeignKey("edition_variants.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    smtp_code: Mapped[int | None]
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Which subject of the edition's A/B test this reader gets (None: no test).
    subject_index: Mapped[int | None] = mapped_column(SmallInteger)


class SubjectTest(Base):
    """An A/B subject test of one edition: a sample gets the subjects first, the
    rest waits (`held` rows) for the subject with the best rate after `wait_minutes`."""

    __tablename__ = "subject_tests"

    edition_id: Mapped[int] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True)
    subjects: Mapped[list[str]] = mapped_column(JSON, default=list)
    sample_percent: Mapped[int] = mapped_column(default=20)
    wait_minutes: Mapped[int] = mapped_column(default=60)
    metric: Mapped[str] = mapped_column(String(10), default="clicks")
    # Set when the ledger is planned: the beat tick picks the winner from then on.
    decide_at: Mapped[datetime | None] = mapped_column(index=True)
    winner: Mapped[int | None]
    decided_at: Mapped[datetime | None]
    # Per-subject figures that chose the winner, kept as they were then.
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EditionLink(Base):
    """A tracked link of an edition: clicks carry its id, never a URL."""

    __tablename__ = "edition_links"
    __table_args__ = (UniqueConstraint("edition_id", "url"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    url: Mapped[str] = mapped_column(String(2000))


class EditionFigures(Base):
    """Delivery counts of an edition that has finished (done, cancelled, failed):
    they no longer change, so they are counted once instead of on every page view."""

    __tablename__ = "edition_figures"

    edition_id: Mapped[int] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True)
    planned: Mapped[int] = mapped_column(default=0)
    sent: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    unknown: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    cancelled: Mapped[int] = mapped_column(default=0)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


# Sends per day (charts).
deliveries_sent_at = Index("ix_deliveries_sent_at", Delivery.sent_at)
# Per-article figures.
edition_links_article = Index("ix_edition_links_article_id", EditionLink.article_id)
class SendQuotaDay(Base):
    """Messages sent per sending domain and UTC day, for the warm-up ramp
    (`MAILER_WARMUP`): shared by every worker through the database."""

    __tablename__ = "send_quota_days"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(default=0)
