"""The sweeper: repairs what dead workers and lost broker messages leave behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from mailer.config import Settings
from mailer.delivery.ledger import finish_if_complete, live_lanes, release_dead_lanes
from mailer.delivery.waiting import RELEASE_CHUNK, release_waiting
from mailer.jobs import TaskName, enqueue_on_commit, start_lanes_on_commit
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    utcnow,
)
from mailer.models.base import DbSession

log = logging.getLogger(__name__)

# An edition with due rows and no live lane gets lanes at most this often.
TOP_UP_INTERVAL = timedelta(seconds=15)

@dataclass
class SweepReport:
    unknown: int = 0
    released: int = 0
    woken: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    recompiled: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    local_released: int = 0  # waiting rows whose reader's hour came (reader-local editions)


def sweep(session: DbSession, settings: Settings, now: datetime | None = None) -> SweepReport:
    """Repair what dead workers and lost broker messages left behind.

    - `sending` rows whose lease ran out: the worker died mid-transaction; the
      message may have arrived, so `unknown` (shown to editors, never re-sent).
    - `claimed` rows whose lease ran out: never started, back to `pending`.
    - on PostgreSQL, rows of lanes known dead (their advisory lock is free) are
      repaired the same way at once, without waiting for the lease, and their
      edition's lanes re-enqueued without waiting for the quiet period.
    - sending editions with due work and no recent activity, or (PostgreSQL) no
      live lane at all: lanes re-enqueued (a lost broker message only delays the send).
    """
    now = now or utcnow()
    report = SweepReport()
    # Pauses that end by themselves (quiet hours are over).
    for edition_id in session.scalars(
        update(Edition)
        .where(Edition.status == EditionStatus.PAUSED, Edition.resume_at <= now)
        .values(status=EditionStatus.SENDING, paused_reason="", resume_at=None,
                breaker_reset_at=now, last_activity_at=now, lanes_woken_at=now)
        .returning(Edition.id)
        .execution_options(synchronize_session=False)
    ).all():
        start_lanes_on_commit(session, edition_id, settings.send_lanes)
        report.resumed.append(edition_id)
    session.commit()
    _release_waiting(session, settings, now, report)
    dead_in: set[int] = set()
    for edition_id in session.scalars(
        select(Edition.id).where(Edition.status.in_([EditionStatus.SENDING, EditionStatus.PAUSED]))
    ).all():
        dead = release_dead_lanes(session, edition_id, settings.dead_lane_grace_seconds, now)
        report.unknown += dead.unknown
        report.released += dead.released
        if dead.workers:
            dead_in.add(edition_id)
    stale = now - timedelta(seconds=settings.claim_lease_seconds)
    report.unknown += session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < stale)
        .values(status=DeliveryStatus.UNKNOWN,
                error="worker lost during the SMTP transaction; the message may have arrived")
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    released_by_lease = session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.CLAIMED, Delivery.claimed_at < stale)
        .values(status=DeliveryStatus.PENDING, claimed_by="")
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    report.released += released_by_lease
    session.commit()

    quiet = now - timedelta(seconds=max(5, settings.claim_lease_seconds // 2))
    for edition in session.scalars(
        select(Edition).where(Edition.status == EditionStatus.SENDING)
    ).all():
        due = session.scalar(
            select(func.count()).select_from(Delivery).where(
                Delivery.edition_id == edition.id,
                (Delivery.status == DeliveryStatus.PENDING)
                | ((Delivery.status == DeliveryStatus.RETRY) & (Delivery.next_attempt_at <= now)),
            )
        )
        live = live_lanes(session, edition.id)
        lost = due and (edition.last_activity_at is None or edition.last_activity_at < quiet
                        or released_by_lease or edition.id in dead_in)
        # On PostgreSQL the lanes' locks say whether any lane of this edition runs:
        # none while rows are due means its lane tasks were lost (broker restart).
        idle = (due and live == 0 and (edition.lanes_woken_at is None
                                      or edition.lanes_woken_at < now - TOP_UP_INTERVAL))
        if lost or idle:
            edition.last_activity_at = now
            edition.lanes_woken_at = now
            start_lanes_on_commit(session, edition.id, max(1, settings.send_lanes - (live or 0)))
            report.woken.append(edition.id)
        elif not due and finish_if_complete(session, edition.id):
            report.finished.append(edition.id)
    for edition in session.scalars(
        select(Edition).where(
            Edition.status == EditionStatus.COMPILING,
            Edition.created_at < now - timedelta(seconds=60),
            (Edition.last_activity_at.is_(None)) | (Edition.last_activity_at < quiet),
        )
    ).all():
        edition.last_activity_at = now
        enqueue_on_commit(session, TaskName.PREPARE_EDITION, edition.id)
        report.recompiled.append(edition.id)
    session.commit()
    return report


def _release_waiting(session: DbSession, settings: Settings, now: datetime,
                     report: SweepReport) -> None:
    """Rows of reader-local editions whose hour has come become pending (in committed
    chunks), and the lanes of their sending editions wake after the first chunk.
    Until then such an edition is `sending` with nothing due: no lane runs for it
    and the sweeper does not call it stuck."""
    woken: set[int] = set()
    while True:
        released = release_waiting(session, now, RELEASE_CHUNK)
        report.local_released += sum(released.values())
        fresh = [edition_id for edition_id in released if edition_id not in woken]
        if fresh:
            for edition in session.scalars(
                select(Edition).where(Edition.id.in_(fresh), Edition.status == EditionStatus.SENDING)
            ).all():
                edition.last_activity_at = now
                edition.lanes_woken_at = now
                start_lanes_on_commit(session, edition.id, settings.send_lanes)
                report.woken.append(edition.id)
            woken.update(fresh)
        session.commit()
        if sum(released.values()) < RELEASE_CHUNK:
            return
