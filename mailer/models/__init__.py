"""All tables. Import models from here."""

from mailer.models.automations import (
    Automation,
    AutomationDelivery,
    AutomationStep,
    AutomationTrigger,
    automation_topics,
)
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
    RecoveryCode,
    Role,
)
from mailer.models.publication import PUBLICATION_ROW_ID, PublicationSettings
from mailer.models.readers import (
    EngagementState,
    Frequency,
    Reader,
    ReaderEvent,
    ReaderStatus,
    Suppression,
    SuppressionReason,
    Topic,
    reader_topics,
)
from mailer.models.segments import Segment
from mailer.models.webhooks import WebhookEndpoint, WebhookEvent, WebhookMessage, WebhookStatus

__all__ = [
    "PUBLICATION_ROW_ID",
    "ApiToken",
    "Article",
    "AuditEvent",
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
    "EditorSession",
    "EngagementState",
    "Feed",
    "Frequency",
    "LoginThrottle",
    "PublicationSettings",
    "Reader",
    "ReaderEvent",
    "ReaderStatus",
    "RecoveryCode",
    "Role",
    "Segment",
    "SendQuotaDay",
    "Suppression",
    "SuppressionReason",
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
