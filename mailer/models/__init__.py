"""All tables. Import models from here."""

from mailer.models.automations import (
    Automation,
    AutomationDelivery,
    AutomationStep,
    AutomationTrigger,
    automation_topics,
)
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
from mailer.models.segments import Segment
from mailer.models.webhooks import WebhookEndpoint, WebhookEvent, WebhookMessage, WebhookStatus

__all__ = [
    "ApiToken",
    "Article",
    "Automation",
    "AutomationDelivery",
    "AutomationStep",
    "AutomationTrigger",
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
    "Segment",
    "Suppression",
    "Topic",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookMessage",
    "WebhookStatus",
    "article_topics",
    "automation_topics",
    "db",
    "digest_topics",
    "reader_topics",
    "utcnow",
    "variant_articles",
]
