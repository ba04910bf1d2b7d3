"""What keeps the editors' console fast with millions of readers (issue 6):
indexes, and the final delivery counts of finished editions.

Kept apart from the table definitions so the models other work owns stay as they are.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, utcnow
from mailer.models.editions import Delivery, EditionLink
from mailer.models.readers import Reader, ReaderEvent


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

# Reader search is an email prefix: `email_key LIKE 'abc%'` needs pattern ops on
# PostgreSQL when the database collation is not C.
readers_email_prefix = Index("ix_readers_email_key_prefix", Reader.email_key,
                             postgresql_ops={"email_key": "varchar_pattern_ops"})
# Charts: events of a kind per day, sends per day.
reader_events_kind_time = Index("ix_reader_events_kind_created_at", ReaderEvent.kind,
                                ReaderEvent.created_at)
deliveries_sent_at = Index("ix_deliveries_sent_at", Delivery.sent_at)
# Per-article figures.
edition_links_article = Index("ix_edition_links_article_id", EditionLink.article_id)
