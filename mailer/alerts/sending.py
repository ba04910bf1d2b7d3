"""Start a breaking-news alert: an edition of one article with its own short layout.

An alert is an ordinary edition (of the built-in digest "Breaking news", which is
never scheduled) with one compiled variant, planned with one `INSERT … SELECT`
into the delivery ledger and sent by the usual lanes: retries, rate limits, the
sweeper, pause/cancel and the progress page all apply, and nobody gets it twice.
The article is then on record as received, so no later digest repeats it to those
readers. The edition's slot is `alert-article-<id>`: the (digest, slot) unique
constraint makes a second alert for the same article impossible, even when two
editors press the button at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, insert, literal, or_, select
from sqlalchemy.exc import IntegrityError

from mailer.common.errors import Conflict, NotFound, ValidationError
from mailer.config import Settings
from mailer.editions.compile import CompiledSelection, add_variant
from mailer.jobs import start_lanes_on_commit
from mailer.mail.rendering import TemplateError, compile_email
from mailer.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    Edition,
    EditionStatus,
    Frequency,
    Reader,
    ReaderStatus,
    article_topics,
    reader_topics,
    utcnow,
)
from mailer.models.base import DbSession
from mailer.readers.events import emit_event

ALERTS_DIGEST = "Breaking news"


def alert_readers(article_id: int) -> Any:
    """Confirmed, not paused readers who opted in to alerts and either share a topic
    with the article or chose no topics (everything)."""
    has_topics = exists().where(reader_topics.c.reader_id == Reader.id)
    shares = exists().where(
        reader_topics.c.reader_id == Reader.id,
        reader_topics.c.topic_id.in_(
            select(article_topics.c.topic_id).where(article_topics.c.article_id == article_id)))
    return ((Reader.status == ReaderStatus.CONFIRMED) & (Reader.frequency != Frequency.PAUSED)
            & Reader.alerts.is_(True) & or_(~has_topics, shares))


def _alerts_digest(session: DbSession) -> Digest:
    digest = session.scalar(select(Digest).where(Digest.name == ALERTS_DIGEST))
    if digest is None:
        # Inactive and unscheduled: it only ever carries alerts.
        digest = Digest(name=ALERTS_DIGEST, template="alert", schedule="", active=False,
                        approval="draft", max_articles=1)
        session.add(digest)
        session.flush()
    return digest


def _article(session: DbSession, ref: object) -> Article:
    if isinstance(ref, bool) or ref in (None, ""):
        raise ValidationError("article is required (an id or a URL).", {"article": "required"})
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        article = session.get(Article, int(ref))
    elif isinstance(ref, str):
        article = session.scalar(select(Article).where(Article.url == ref.strip()))
    else:
        raise ValidationError("article must be an id or a URL.", {"article": "invalid"})
    if article is None:
        raise NotFound("No such article.")
    return article


def send_alert(session: DbSession, settings: Settings, article_ref: object, *,
               created_by: str = "", now: datetime | None = None) -> Edition:
    """Compile, plan and start an alert for one article. Commits; on any error
    nothing is written."""
    now = now or utcnow()
    article = _article(session, article_ref)
    eligible = alert_readers(article.id)
    if not session.scalar(select(func.count()).select_from(Reader).where(eligible)):
        raise Conflict("No reader of this article's topics asked for alerts.",
                       {"article": "no alert readers"})
    context = {"article": {"id": article.id, "title": article.title, "url": article.url,
                           "summary": article.summary or "", "image_url": article.image_url or ""},
               "base_url": settings.base_url}
    try:
        compiled = compile_email("alert", context)
    except TemplateError as exc:
        raise ValidationError(f"The alert layout does not compile: {exc}",
                              {"template": "alert"}) from exc
    digest = _alerts_digest(session)
    edition = Edition(digest=digest, slot=f"alert-article-{article.id}",
                      status=EditionStatus.SENDING, subject=compiled.subject,
                      article_ids=[article.id], created_by=created_by, created_at=now,
                      started_at=now, last_activity_at=now)
    session.add(edition)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("This article was already sent as an alert.",
                       {"article": "already alerted"}) from exc
    variant = add_variant(session, edition, [article.id], CompiledSelection(compiled, [article.id], 0))
    session.execute(insert(Delivery).from_select(
        ["edition_id", "reader_id", "variant_id", "status", "attempts", "claimed_by", "error",
         "created_at"],
        select(literal(edition.id), Reader.id, literal(variant.id),
               literal(DeliveryStatus.PENDING), literal(0), literal(""), literal(""),
               literal(now, type_=Edition.created_at.type)).where(eligible).order_by(Reader.id)))
    edition.planned = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition.id)) or 0
    start_lanes_on_commit(session, edition.id, settings.send_lanes)
    emit_event(session, "edition.started", {"edition": {
        "id": edition.id, "digest": digest.name, "subject": edition.subject,
        "planned": edition.planned, "alert_article_id": article.id}}, now)
    session.commit()
    return edition
