"""Sending due automation emails from their ledger (`automation_deliveries`).

The same life as a digest delivery: a row is claimed (`UPDATE … RETURNING`, with
`FOR UPDATE SKIP LOCKED` on PostgreSQL), marked `sending` in the database before
the body goes out, `sent` after the 250. A 4xx is retried with back-off until the
retry deadline, a 5xx fails, a connection lost after the body → `unknown`, never
re-sent. A worker killed mid-send leaves at most one row in `sending`, which the
next drain (after the claim lease) records as `unknown`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import select, update

from mailer.common.tokens import Purpose, Tokens
from mailer.config import Settings
from mailer.database import on_postgres
from mailer.delivery.lane import recipient_for
from mailer.delivery.ledger import ClaimLost, ReaderRow, backoff_seconds, worker_name
from mailer.delivery.ratelimit import RateLimiter
from mailer.mail.dkim import DkimSigner
from mailer.mail.messages import MessageSkeleton
from mailer.mail.senders import Outcome, Result, Sender
from mailer.models import (
    Automation,
    AutomationDelivery,
    AutomationStep,
    AutomationTrigger,
    DeliveryStatus,
    Frequency,
    Reader,
    ReaderEvent,
    ReaderStatus,
    utcnow,
)
from mailer.models.base import DbSession
from mailer.readers.events import emit_event
from mailer.readers.subscriptions import suppress

log = logging.getLogger(__name__)


@dataclass
class AutomationReport:
    claimed: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    repaired: int = 0
    more: bool = False  # stopped on the time budget with rows still due


@dataclass(frozen=True)
class _Step:
    id: int
    version: int
    automation_id: int
    enabled: bool
    active: bool
    trigger: str


_skeletons: dict[tuple[int, int, str, int, int], MessageSkeleton] = {}


def _skeleton(session: DbSession, settings: Settings, dkim: DkimSigner | None,
              step_id: int) -> tuple[_Step, MessageSkeleton]:
    """The step's MIME skeleton, built once per step version (and process)."""
    row = session.execute(
        select(AutomationStep, Automation.enabled, Automation.trigger)
        .join(Automation, Automation.id == AutomationStep.automation_id)
        .where(AutomationStep.id == step_id)).one()
    step, enabled, trigger = row
    info = _Step(step.id, step.version, step.automation_id, bool(enabled), step.active, trigger)
    # The content's hash is in the key too: SQLite can hand a deleted step's id to a new one.
    key = (step.id, step.version, settings.mail_from, id(dkim),
           hash((step.subject, step.html, step.text)))
    skeleton = _skeletons.get(key)
    if skeleton is None:
        if len(_skeletons) > 256:
            _skeletons.clear()
        # Message-IDs of automation emails use the negative step id where editions
        # use their (positive) id: the two never collide, and a row keeps its id.
        skeleton = MessageSkeleton(
            subject=step.subject, html=step.html, text=step.text, mail_from=settings.mail_from,
            reply_to=settings.reply_to, unsubscribe_mailto=settings.unsubscribe_mailto,
            secret=settings.secret_key, edition_id=-step.id,
            extra_headers={"X-Mailer-Automation": f"{step.automation_id}.{step.position}"},
            dkim=dkim)
        _skeletons[key] = skeleton
    return info, skeleton


def repair_stale(session: DbSession, lease_seconds: float, now: datetime) -> int:
    """Rows a dead worker left behind: `sending` → `unknown` (the body may have gone
    out), `claimed` → `pending` (nothing was sent)."""
    stale = now - timedelta(seconds=lease_seconds)
    unknown = session.execute(
        update(AutomationDelivery)
        .where(AutomationDelivery.status == DeliveryStatus.SENDING,
               AutomationDelivery.claimed_at < stale)
        .values(status=DeliveryStatus.UNKNOWN, error="worker stopped during the SMTP transaction")
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    released = session.execute(
        update(AutomationDelivery)
        .where(AutomationDelivery.status == DeliveryStatus.CLAIMED,
               AutomationDelivery.claimed_at < stale)
        .values(status=DeliveryStatus.PENDING, claimed_by="")
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    session.commit()
    return int(unknown or 0) + int(released or 0)


def claim_due(session: DbSession, worker: str, limit: int, now: datetime
              ) -> list[tuple[int, int, int]]:
    """Take up to `limit` due rows: (row id, step id, reader id)."""
    due = (select(AutomationDelivery.id)
           .where(AutomationDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRY]),
                  AutomationDelivery.due_at <= now)
           .order_by(AutomationDelivery.due_at).limit(limit))
    if on_postgres(session):
        due = due.with_for_update(skip_locked=True)
    rows = session.execute(
        update(AutomationDelivery)
        .where(AutomationDelivery.id.in_(due.scalar_subquery()))
        .values(status=DeliveryStatus.CLAIMED, claimed_by=worker, claimed_at=now)
        .returning(AutomationDelivery.id, AutomationDelivery.step_id, AutomationDelivery.reader_id)
        .execution_options(synchronize_session=False)).all()
    session.commit()
    return sorted((r[0], r[1], r[2]) for r in rows)


def due_count(session: DbSession, now: datetime | None = None) -> int:
    """Whether rows are due (at most 1 is counted): the tick wakes the drain on it."""
    found = session.scalar(
        select(AutomationDelivery.id)
        .where(AutomationDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRY]),
               AutomationDelivery.due_at <= (now or utcnow())).limit(1))
    session.commit()
    return 0 if found is None else 1


class _Writer:
    def __init__(self, session: DbSession, worker: str, settings: Settings,
                 report: AutomationReport) -> None:
        self.session, self.worker, self.settings, self.report = session, worker, settings, report

    def _set(self, row_id: int, **values: object) -> int:
        count = self.session.execute(
            update(AutomationDelivery)
            .where(AutomationDelivery.id == row_id, AutomationDelivery.claimed_by == self.worker)
            .values(**values).execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        self.session.commit()
        return int(count or 0)

    def mark_sending(self, row_id: int) -> None:
        """Runs before the body goes out; a row the sweep took back is not sent."""
        count = self.session.execute(
            update(AutomationDelivery)
            .where(AutomationDelivery.id == row_id, AutomationDelivery.claimed_by == self.worker,
                   AutomationDelivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.SENDING, attempts=AutomationDelivery.attempts + 1,
                    claimed_at=utcnow())
            .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
        self.session.commit()
        if not count:
            raise ClaimLost(row_id)

    def skip(self, row_id: int, reason: str) -> None:
        self._set(row_id, status=DeliveryStatus.SKIPPED, error=reason)
        self.report.skipped += 1

    def sent(self, row_id: int) -> None:
        self._set(row_id, status=DeliveryStatus.SENT, sent_at=utcnow(), smtp_code=250, error="")
        self.report.sent += 1

    def outcome(self, row_id: int, reader: ReaderRow, outcome: Outcome) -> None:
        now = utcnow()
        attempts, created = self.session.execute(
            select(AutomationDelivery.attempts, AutomationDelivery.created_at)
            .where(AutomationDelivery.id == row_id)).one()
        if not outcome.counted:
            attempts += 1
        values: dict[str, object] = {"smtp_code": outcome.code or None, "attempts": attempts,
                                     "error": outcome.message[:1000], "claimed_at": now}
        deadline = created + timedelta(hours=self.settings.retry_deadline_hours)
        if outcome.result == Result.TEMPORARY and now < deadline:
            values["status"] = DeliveryStatus.RETRY
            values["claimed_by"] = ""
            values["due_at"] = now + timedelta(
                seconds=backoff_seconds(attempts, self.settings.retry_base_seconds))
            self.report.retry += 1
        elif outcome.result == Result.UNKNOWN:
            values["status"] = DeliveryStatus.UNKNOWN
            self.report.unknown += 1
        else:
            values["status"] = DeliveryStatus.FAILED
            self.report.failed += 1
            emit_event(self.session, "delivery.failed", {"delivery": {
                "automation_delivery_id": row_id, "reader_id": reader.id, "email": reader.email,
                "smtp_code": outcome.code or None, "error": outcome.message[:300]}}, now)
        if outcome.result == Result.PERMANENT and outcome.stage == "envelope":
            # A hard bounce, as in the digest ledger: never mail the address again.
            self.session.execute(update(Reader).where(Reader.id == reader.id)
                                 .values(status=ReaderStatus.BOUNCED))
            suppress(self.session, reader.email, "bounce")
            self.session.add(ReaderEvent(reader_id=reader.id, kind="bounce", detail={
                "code": outcome.code, "smtp": outcome.message[:300]}))
        self._set(row_id, **values)

    def defer(self, row_id: int, seconds: float) -> None:
        self._set(row_id, status=DeliveryStatus.RETRY, claimed_by="",
                  due_at=utcnow() + timedelta(seconds=seconds))

    def release(self) -> None:
        self.session.execute(
            update(AutomationDelivery)
            .where(AutomationDelivery.claimed_by == self.worker,
                   AutomationDelivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.PENDING, claimed_by="")
            .execution_options(synchronize_session=False))
        self.session.commit()


def send_due_automations(
    session: DbSession, settings: Settings, tokens: Tokens, sender: Sender, *,
    dkim: DkimSigner | None = None, limiter: RateLimiter | None = None,
    rearm: Callable[[], None] = lambda: None, batch: int = 100, budget_seconds: float = 20.0,
    clock: Callable[[], float] = time.monotonic,
) -> AutomationReport:
    """Send every automation email that is due, in claimed batches."""
    report = AutomationReport()
    report.repaired = repair_stale(session, settings.claim_lease_seconds, utcnow())
    worker = worker_name()
    writer = _Writer(session, worker, settings, report)
    envelope_from = settings.mail_from_address
    started = clock()
    steps: dict[int, tuple[_Step, MessageSkeleton]] = {}
    try:
        while True:
            rearm()
            rows = claim_due(session, worker, batch, utcnow())
            if not rows:
                return report
            report.claimed += len(rows)
            readers = {r.id: ReaderRow(*r) for r in session.execute(
                select(Reader.id, Reader.email, Reader.name, Reader.status, Reader.frequency,
                       Reader.token_nonce)
                .where(Reader.id.in_({r[2] for r in rows})))}
            for row_id, step_id, reader_id in rows:
                if clock() - started > budget_seconds:
                    report.more = True
                    return report
                if step_id not in steps:
                    steps[step_id] = _skeleton(session, settings, dkim, step_id)
                step, skeleton = steps[step_id]
                reader = readers.get(reader_id)
                if reader is None or reader.status != ReaderStatus.CONFIRMED:
                    writer.skip(row_id, "reader unsubscribed, erased or suppressed")
                    continue
                if reader.frequency == Frequency.PAUSED:
                    writer.skip(row_id, "reader paused their subscription")
                    continue
                if not step.enabled or not step.active:
                    writer.skip(row_id, "automation disabled or step removed when it fell due")
                    continue
                if limiter is not None:
                    wait = limiter.acquire(reader.email.rpartition("@")[2].lower(), max_wait=1.0)
                    if wait > 0:
                        writer.defer(row_id, wait)
                        continue
                recipient = recipient_for(settings, tokens, reader)
                if step.trigger == AutomationTrigger.READER_INACTIVE:
                    keep = tokens.reader_token(Purpose.KEEP, reader.id, reader.token_nonce)
                    recipient.extra = {"keep_url": f"{settings.base_url}/keep/{keep}"}
                data = skeleton.render(recipient)
                try:
                    outcome = sender.send(envelope_from, reader.email, data,
                                          before_data=partial(writer.mark_sending, row_id))
                except ClaimLost:
                    log.warning("automation delivery %s was taken back; not sent", row_id)
                    continue
                if outcome.sent:
                    writer.sent(row_id)
                else:
                    writer.outcome(row_id, reader, outcome)
    finally:
        try:
            writer.release()
        except Exception:
            session.rollback()
            log.exception("could not release automation claims of %s", worker)
