"""An edition's progress: counts per ledger status, rate and ETA."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from mailer.editions import zones
from mailer.editions.control import get_edition
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionFigures,
    EditionStatus,
    utcnow,
)
from mailer.models.base import DbSession

RATE_WINDOW = 60  # seconds over which `rate` is measured
EDITIONS_PAGE = 50
_FIGURES = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN, DeliveryStatus.SKIPPED,
            DeliveryStatus.CANCELLED)


def status_counts(session: DbSession, edition_id: int) -> dict[str, int]:
    return _counts(session, [edition_id])[edition_id]


def _counts(session: DbSession, edition_ids: list[int], cached: bool = False
            ) -> dict[int, dict[str, int]]:
    """Deliveries per (edition, status) in one grouped query. With `cached`, finished
    editions whose figures were kept (edition_figures; their ledger no longer
    changes) are read from there instead of counting perhaps millions of rows."""
    out: dict[int, dict[str, int]] = {}
    if cached and edition_ids:
        for row in session.scalars(select(EditionFigures).where(EditionFigures.edition_id.in_(edition_ids))):
            out[row.edition_id] = {status: getattr(row, status) for status in _FIGURES}
    live = [i for i in edition_ids if i not in out]
    counted: dict[int, dict[str, int]] = {i: defaultdict(int) for i in live}
    if live:
        for edition_id, status, count in session.execute(
            select(Delivery.edition_id, Delivery.status, func.count())
            .where(Delivery.edition_id.in_(live))
            .group_by(Delivery.edition_id, Delivery.status)
        ):
            counted[edition_id][status] = count
    out.update({i: dict(c) for i, c in counted.items()})
    return out


def _recently_sent(session: DbSession, edition_ids: list[int], now: datetime) -> dict[int, int]:
    """Messages sent in the last RATE_WINDOW seconds per edition (only sending
    editions: the others would make this walk every sent row for nothing)."""
    if not edition_ids:
        return {}
    rows = session.execute(
        select(Delivery.edition_id, func.count())
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.edition_id.in_(edition_ids), Edition.status == EditionStatus.SENDING,
               Delivery.status == DeliveryStatus.SENT,
               Delivery.sent_at >= now - timedelta(seconds=RATE_WINDOW))
        .group_by(Delivery.edition_id)
    )
    return {edition_id: count for edition_id, count in rows}


def _progress(edition: Edition, counts: dict[str, int], recent: int, now: datetime) -> dict[str, Any]:
    remaining = sum(counts.get(s, 0) for s in DeliveryStatus.OUTSTANDING)
    sendable = remaining - counts.get(DeliveryStatus.WAITING, 0)  # waiting rows have their hour
    window = RATE_WINDOW
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
        "held": counts.get(DeliveryStatus.HELD, 0),
        "segment_id": edition.segment_id,
        "waiting": counts.get(DeliveryStatus.WAITING, 0),
        "remaining": remaining,
        "rate": round(rate, 1),
        "eta_seconds": round(sendable / rate) if rate > 0 and sendable else None,
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


def progress(session: DbSession, edition_id: int, now: datetime | None = None, *,
             by_zone: bool = False) -> dict[str, Any]:
    """Counters for API, CLI and console: planned, sent, failed, unknown, remaining,
    rate (messages/s over the last minute) and ETA (seconds). `by_zone`: a
    reader-local edition's progress per reader zone too (one grouped query)."""
    now = now or utcnow()
    edition = get_edition(session, edition_id)
    recent = _recently_sent(session, [edition_id], now).get(edition_id, 0)
    out = _progress(edition, status_counts(session, edition_id), recent, now)
    out.update(_local(session, [edition]).get(edition_id, {}))
    if by_zone and edition.local_send:
        out["zones"] = zones.zone_progress(session, edition)
    return out


def _local(session: DbSession, editions: list[Edition]) -> dict[int, dict[str, Any]]:
    """Reader-local editions: their local send time and when the next zone is due."""
    local = [e for e in editions if e.local_send]
    upcoming = zones.next_zone_at(session, [e.id for e in local])
    return {e.id: {"local_send": e.local_send,
                   "next_zone_at": upcoming[e.id].isoformat() if e.id in upcoming else None}
            for e in local}


def list_editions(session: DbSession, page: int = 1, per_page: int = EDITIONS_PAGE,
                  now: datetime | None = None) -> tuple[list[dict[str, Any]], bool]:
    """A page of editions, newest first, each with the counters of `progress`, in
    three queries whatever the page size. Returns (editions, whether more follow)."""
    now = now or utcnow()
    editions = list(session.scalars(
        select(Edition).order_by(Edition.id.desc()).offset((page - 1) * per_page).limit(per_page + 1)
    ))
    more = len(editions) > per_page
    editions = editions[:per_page]
    ids = [e.id for e in editions]
    counts = _counts(session, ids, cached=True)
    recent = _recently_sent(session, ids, now)
    local = _local(session, editions)
    out = [_progress(e, counts[e.id], recent.get(e.id, 0), now) for e in editions]
    for row in out:
        row.update(local.get(row["id"], {}))
    return out, more
