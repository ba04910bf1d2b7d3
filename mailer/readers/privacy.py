"""A reader's personal data: download all of it, or erase it.

Erasure deletes the reader row (topics go with it), strips personal fields from
the reader's events and delivery rows (which stay, anonymous, so edition counts
hold), and keeps only a sha256 of the address as a suppression entry
so the address is never imported or mailed again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from mailer.common.errors import NotFound
from mailer.models import AutomationDelivery, Delivery, Reader, ReaderEvent, SuppressionReason
from mailer.models.base import DbSession
from mailer.readers.events import emit_event
from mailer.readers.subscriptions import suppress


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_reader(session: DbSession, reader_id: int) -> dict[str, Any]:
    """Everything we hold about one reader, as plain JSON-able data."""
    reader = session.get(Reader, reader_id)
    if reader is None:
        raise NotFound("Unknown reader.")
    events = session.scalars(
        select(ReaderEvent).where(ReaderEvent.reader_id == reader_id).order_by(ReaderEvent.id)
    )
    deliveries = session.scalars(
        select(Delivery).where(Delivery.reader_id == reader_id).order_by(Delivery.id)
    )
    return {
        "reader": {
            "email": reader.email,
            "pending_email": reader.pending_email,
            "name": reader.name,
            "status": reader.status,
            "frequency": reader.frequency,
            "timezone": reader.timezone,
            "attributes": dict(reader.attributes or {}),
            "alerts": reader.alerts,
            "engagement_state": reader.engagement_state,
            "topics": sorted(t.slug for t in reader.topics),
            "created_at": _iso(reader.created_at),
            "confirmed_at": _iso(reader.confirmed_at),
            "unsubscribed_at": _iso(reader.unsubscribed_at),
            "consent": {"at": _iso(reader.consent_at), "source": reader.consent_source,
                        "ip": reader.consent_ip},
        },
        "events": [{"kind": e.kind, "at": _iso(e.created_at), "edition_id": e.edition_id,
                    "detail": e.detail, "note": e.note} for e in events],
        "deliveries": [{"edition_id": d.edition_id, "status": d.status, "attempts": d.attempts,
                        "sent_at": _iso(d.sent_at)} for d in deliveries],
        "automation_emails": [
            {"step_id": d.step_id, "status": d.status, "due_at": _iso(d.due_at),
             "sent_at": _iso(d.sent_at)}
            for d in session.scalars(select(AutomationDelivery)
                                     .where(AutomationDelivery.reader_id == reader_id)
                                     .order_by(AutomationDelivery.id))],
    }


def erase_reader(session: DbSession, reader_id: int) -> None:
    """Delete the reader's personal data for good; keep a hashed suppression. Commits."""
    reader = session.get(Reader, reader_id)
    if reader is None:
        raise NotFound("Unknown reader.")
    # Only the confirmed address: a pending one is merely what was typed, and
    # suppressing it would let anyone block any address (even another reader's).
    suppress(session, reader.email, SuppressionReason.ERASED)
    # Events keep their kind and time (counts), lose who and anything personal.
    session.execute(
        update(ReaderEvent).where(ReaderEvent.reader_id == reader_id)
        .values(reader_id=None, detail={}, note="")
        .execution_options(synchronize_session=False)
    )
    # SMTP errors can quote the address; the anonymous ledger row stays.
    session.execute(
        update(Delivery).where(Delivery.reader_id == reader_id).values(error="")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(AutomationDelivery).where(AutomationDelivery.reader_id == reader_id).values(error="")
        .execution_options(synchronize_session=False)
    )
    session.add(ReaderEvent(reader_id=None, kind="erased", detail={}))
    emit_event(session, "reader.erased", {"reader": {"id": reader_id}})
    session.delete(reader)
    session.commit()
