"""All tables. Import models from here."""

from mailer.models.base import Base, db, utcnow
from mailer.models.content import Article, Digest, Feed, article_topics, digest_topics
from mailer.models.editions import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionFigures,
    EditionLink,
    EditionStatus,
    EditionVariant,
    SendQuotaDay,
    variant_articles,
)
from mailer.models.editors import (
    ApiToken,
    AuditEvent,
    Editor,
    EditorSession,
    LoginThrottle,
    Role,
)
from mailer.models.publication import PUBLICATION_ROW_ID, PublicationSettings
from mailer.models.readers import (
    Frequency,
    Reader,
    ReaderEvent,
    ReaderStatus,
    Suppression,
    SuppressionReason,
    Topic,
    reader_topics,
)

__all__ = [
    "PUBLICATION_ROW_ID",
    "ApiToken",
    "Article",
    "AuditEvent",
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
    "EditorSession",
    "Feed",
    "Frequency",
    "LoginThrottle",
    "PublicationSettings",
    "Reader",
    "ReaderEvent",
    "ReaderStatus",
    "Role",
    "SendQuotaDay",
    "Suppression",
    "SuppressionReason",
    "Topic",
    "article_topics",
    "db",
    "digest_topics",
    "reader_topics",
    "utcnow",
    "variant_articles",
]
