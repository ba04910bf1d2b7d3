"""Indexes that keep the editors' console fast with millions of readers (issue 6).

Kept apart from the table definitions so the models other work owns stay as they are.
"""

from sqlalchemy import Index

from mailer.models.editions import Delivery, EditionLink
from mailer.models.readers import Reader, ReaderEvent

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
