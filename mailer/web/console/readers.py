"""Readers: search and filters, and one reader's full history."""

from __future__ import annotations

from datetime import datetime

from flask import render_template
from sqlalchemy import exists, select

from mailer.automations import engagement_status
from mailer.extensions import db
from mailer.models import (
    Automation,
    AutomationDelivery,
    AutomationStep,
    Delivery,
    Edition,
    Reader,
    ReaderEvent,
    ReaderStatus,
    Topic,
    reader_topics,
)
from mailer.runtime import runtime
from mailer.web.console.auth import viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import PAGE_SIZE, page_number, text_arg

STATUSES = (ReaderStatus.PENDING, ReaderStatus.CONFIRMED, ReaderStatus.UNSUBSCRIBED,
            ReaderStatus.BOUNCED, ReaderStatus.COMPLAINED)
HISTORY_LIMIT = 500


def search_readers(session, q: str, status: str, topic: str, page: int  # type: ignore[no-untyped-def]
                   ) -> tuple[list[Reader], bool]:
    """Email prefix (served by a pattern index) or exact id; status and topic filters.
    Newest first, one page at a time; no total count (it would scan millions)."""
    query = select(Reader)
    q = q.strip().lower()
    if q.isdigit():
        query = query.where(Reader.id == int(q))
    elif q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Reader.email_key.like(f"{escaped}%", escape="\\"))
    if status in STATUSES:
        query = query.where(Reader.status == status)
    if topic:
        query = query.where(exists().where(
            reader_topics.c.reader_id == Reader.id,
            reader_topics.c.topic_id == select(Topic.id).where(Topic.slug == topic)
            .scalar_subquery()))
    rows = session.scalars(query.order_by(Reader.id.desc())
                           .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    return list(rows[:PAGE_SIZE]), len(rows) > PAGE_SIZE


@console.get("/readers")
@viewer_required
def readers() -> str:
    q, status, topic = text_arg("q", 320), text_arg("status", 20), text_arg("topic", 64)
    page = page_number()
    rows, more = search_readers(db.session, q, status, topic, page)
    topics = db.session.scalars(select(Topic).order_by(Topic.name)).all()
    return render_template("console/readers.html", readers=rows, more=more, page=page, q=q,
                           status=status, topic=topic, statuses=STATUSES, topics=topics)


@console.get("/readers/<int:reader_id>")
@viewer_required
def reader(reader_id: int) -> str:
    row = db.get_or_404(Reader, reader_id, description="No such reader.")
    deliveries = db.session.execute(
        select(Delivery, Edition.subject, Edition.digest_id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.reader_id == reader_id)
        .order_by(Delivery.id.desc()).limit(HISTORY_LIMIT)
    ).all()
    events = db.session.scalars(
        select(ReaderEvent).where(ReaderEvent.reader_id == reader_id)
        .order_by(ReaderEvent.created_at.desc(), ReaderEvent.id.desc()).limit(HISTORY_LIMIT)
    ).all()
    # One timeline, newest first: deliveries by their last change, events as they came.
    timeline: list[tuple[datetime, str, str, str, int | None, str]] = [
        (d.sent_at or d.created_at, "delivery", d.status,
                 f"Edition #{d.edition_id} {subject}".strip(), d.edition_id, d.error)
                for d, subject, _ in deliveries]
    timeline += [(e.created_at, "event", e.kind, e.note or _detail(e.detail), e.edition_id, "")
                 for e in events]
    steps = db.session.execute(
        select(AutomationDelivery, Automation.name, AutomationStep.position, AutomationStep.subject)
        .join(AutomationStep, AutomationStep.id == AutomationDelivery.step_id)
        .join(Automation, Automation.id == AutomationStep.automation_id)
        .where(AutomationDelivery.reader_id == reader_id)
        .order_by(AutomationDelivery.id.desc()).limit(HISTORY_LIMIT)
    ).all()
    timeline += [(d.sent_at or d.due_at, "automation", d.status,
                  f"{name} step {position + 1}: {subject}", None, d.error)
                 for d, name, position, subject in steps]
    timeline.sort(key=lambda item: item[0], reverse=True)
    return render_template("console/reader.html", reader=row, deliveries=deliveries,
                           events=events, timeline=timeline,
                           engagement=engagement_status(db.session, row, runtime().settings))


def _detail(detail: dict[str, object] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (detail or {}).items())
