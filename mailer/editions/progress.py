"""An edition's progress: counts per ledger status, rate and ETA."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from mailer.editions.control import get_edition
from mailer.models import (
    Delivery,
    DeliveryStatus,
    utcnow,
)
from mailer.models.base import DbSession


def status_counts(session: DbSession, edition_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.edition_id == edition_id)
        .group_by(Delivery.status)
    )
    return {status: count for status, count in rows}


def progress(session: DbSession, edition_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Counters for API, CLI and console: planned, sent, failed, unknown, remaining,
    rate (messages/s over the last minute) and ETA (seconds)."""
    now = now or utcnow()
    edition = get_edition(session, edition_id)
    counts = status_counts(session, edition_id)
    remaining = sum(counts.get(s, 0) for s in DeliveryStatus.OUTSTANDING)
    window = 60
    recent = session.scalar(
        select(func.count()).select_from(Delivery).where(
            Delivery.edition_id == edition_id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at >= now - timedelta(seconds=window),
        )
    ) or 0
    if edition.started_at and (now - edition.started_at).total_seconds() < window:
        window = max(1, int((now - edition.started_at).total_seconds()))
    rate = recent / window
    return {
        "id": edition.id,
        "digest": edition.digest.name,
        "digest_id": edition.digest_id,
        "status": edition.status,
        "subject": edition.subject,
        "planned": edition.planned or sum(counts.values()),
        "sent": counts.get(DeliveryStatus.SENT, 0),
        "failed": counts.get(DeliveryStatus.FAILED, 0),
        "unknown": counts.get(DeliveryStatus.UNKNOWN, 0),
        "skipped": counts.get(DeliveryStatus.SKIPPED, 0),
        "cancelled": counts.get(DeliveryStatus.CANCELLED, 0),
        "retrying": counts.get(DeliveryStatus.RETRY, 0),
        "remaining": remaining,
        "rate": round(rate, 1),
        "eta_seconds": round(remaining / rate) if rate > 0 and remaining else None,
        "error": edition.error,
        # Set when the engine paused the edition itself (circuit breaker).
        "paused_reason": edition.paused_reason,
        "relay_unreachable_since": (edition.relay_unreachable_since.isoformat()
                                    if edition.relay_unreachable_since else None),
        "resume_at": edition.resume_at.isoformat() if edition.resume_at else None,
        "relay_status": (f"relay unreachable since "
                         f"{edition.relay_unreachable_since:%Y-%m-%d %H:%M:%S} UTC"
                         if edition.relay_unreachable_since else ""),
        "created_at": edition.created_at.isoformat(),
        "started_at": edition.started_at.isoformat() if edition.started_at else None,
        "finished_at": edition.finished_at.isoformat() if edition.finished_at else None,
    }
