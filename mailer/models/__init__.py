"""All tables. Import models from here."""

from mailer.models.base import Base, db, utcnow
from mailer.models.console import EditionFigures
from mailer.models.content import Article, Digest, Feed, article_topics, digest_topics
from mailer.models.editions import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionLink,
    EditionStatus,
    EditionVariant,
    SendQuotaDay,
    variant_articles,
)
from mailer.models.editors import ApiToken, Editor, Role
from mailer.models.readers import (
    Frequency,
    Reader,
    ReaderEvent,
    ReaderStatus,
    Suppression,
    Topic,
    reader_topics,
)

__all__ = [
    "ApiToken",
    "Article",
    "Base",
    "Delivery",
    "DeliveryStatus",
    "Digest",
    "Edition",
    "EditionFigures",
    "EditionLink",
    "EditionStatus",
    "EditionVariant",
    "Editor",
    "Feed",
    "Frequency",
    "Reader",
    "ReaderEvent",
    "ReaderStatus",
    "Role",
    "SendQuotaDay",
    "Suppression",
    "Topic",
    "article_topics",
    "db",
    "digest_topics",
    "reader_topics",
    "utcnow",
    "variant_articles",
]
