"""A small, complete data set for console tests: a sent edition with events."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import automations, delivery, editions, segments
from mailer.console.api_tokens import create_token
from mailer.models import (
    ApiToken,
    Edition,
    EditionLink,
    Feed,
    Reader,
    ReaderEvent,
    WebhookEndpoint,
    WebhookMessage,
    utcnow,
)
from mailer.runtime import Runtime
from tests.support import factories


@dataclass
class World:
    topic_slug: str
    article_id: int
    digest_id: int
    reader_id: int
    edition_id: int
    token_id: int
    outbox_name: str
    link_ids: list[int]
    editor_id: int = 0  # an account for the /console/editors/<id> routes; set by the caller
    feed_id: int = 0
    reader_nonce: str = ""  # signed into the reader's tracking links
    automation_id: int = 0
    step_id: int = 0
    endpoint_id: int = 0
    message_id: int = 0
    segment_id: int = 0

    def params(self) -> dict[str, object]:
        return {"article_id": self.article_id, "digest_id": self.digest_id,
                "reader_id": self.reader_id, "edition_id": self.edition_id,
                "token_id": self.token_id, "name": self.outbox_name, "editor_id": self.editor_id,
                "feed_id": self.feed_id,
                "automation_id": self.automation_id, "step_id": self.step_id,
                "endpoint_id": self.endpoint_id, "message_id": self.message_id,
                "segment_id": self.segment_id}


def send_edition(session: Session, rt: Runtime, digest_id: int, tracking: bool = False) -> int:
    """Start, compile and send an edition in-process (memory sender set by the caller)."""
    edition = editions.start_edition(session, digest_id, created_by="test")
    settings = dataclasses.replace(rt.settings, tracking=tracking)
    editions.prepare_edition(session, settings, edition.id)
    delivery.run_lane(session, edition.id, settings=settings, sender=rt.sender(),
                      tokens=rt.tokens, budget_seconds=5.0,
                      # fresh: variant ids repeat across tests once tables are emptied
                      skeletons=delivery.SkeletonCache(settings, rt.dkim))
    session.info.pop("mailer_pending_tasks", None)
    return edition.id


def build_world(session: Session, rt: Runtime, tracking: bool = True) -> World:
    topic = factories.topic(session, "local", "Local")
    article = factories.article(session, topics=[topic], title="Harbour ferry timetable")
    factories.article(session, topics=[topic], title="Town council meets")
    digest = factories.digest(session, "Morning", topics=[topic])
    reader = factories.reader(session, "ada@example.org", topics=[topic], name="Ada")
    factories.reader(session, "bob@example.org", topics=[topic])
    edition_id = send_edition(session, rt, digest.id, tracking=tracking)
    session.add(ReaderEvent(reader_id=reader.id, edition_id=edition_id, kind="open", detail={}))
    session.commit()
    create_token(session, "world token")
    token = session.scalar(select(ApiToken).where(ApiToken.name == "world token"))
    outbox = rt.settings.outbox_path
    outbox.mkdir(parents=True, exist_ok=True)
    name = "1700000000-1-1.eml"
    (outbox / name).write_bytes(
        b"From: news@mailer.test\r\nTo: <script>alert(1)</script>@example.org\r\n"
        b"Subject: Hello <b>there</b>\r\nContent-Type: text/html\r\n\r\n"
        b"<script>alert('x')</script><p>Body</p>\r\n")
    links = list(session.scalars(select(EditionLink.id).where(EditionLink.edition_id == edition_id)))
    assert session.get(Edition, edition_id).status == "done"
    feed = Feed(url="https://news.example.org/feed.xml", title="Main feed")
    session.add(feed)
    session.commit()
    automation = automations.save_automation(session, {"name": "Welcome", "steps": [
        {"delay_minutes": 0, "subject": "Welcome", "body_text": "Hello"}]}, rt.settings.base_url)
    endpoint = WebhookEndpoint(url="https://hooks.example.org/x", secret="whsec_AAAA",
                               event_types=",reader.confirmed,")
    session.add(endpoint)
    session.flush()
    message = WebhookMessage(endpoint_id=endpoint.id, msg_id="msg_world", event_type="x", body="{}",
                             next_attempt_at=utcnow() + timedelta(days=1))
    session.add(message)
    session.commit()
    segment = segments.save_segment(session, {"name": "Openers", "rules": [
        {"field": "opened", "op": "within_days", "value": 30}]})
    return World(topic.slug, article.id, digest.id, reader.id, edition_id, token.id, name, links,
                 feed_id=feed.id, reader_nonce=session.get(Reader, reader.id).token_nonce,
                 automation_id=automation.id, step_id=automation.steps[0].id,
                 endpoint_id=endpoint.id, message_id=message.id, segment_id=segment.id)
