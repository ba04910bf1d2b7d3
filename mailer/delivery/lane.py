"""A send lane: claim a batch from the ledger, build each message from its
variant's skeleton, send it over one SMTP connection and record the outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial

from sqlalchemy import func, select, update

from mailer.common.tokens import Purpose, Tokens
from mailer.config import Settings
from mailer.delivery.ledger import (
    ClaimLost,
    LaneReport,
    LedgerWriter,
    ReaderRow,
    claim_batch,
    finish_if_complete,
    heartbeat,
    worker_name,
)
from mailer.delivery.ratelimit import THROTTLE_CODES, NoLimit, RateLimiter
from mailer.jobs import TaskName, enqueue_on_commit
from mailer.mail.dkim import DkimSigner
from mailer.mail.messages import MessageSkeleton, Recipient
from mailer.mail.outgoing import digest_list_id, envelope_sender, feedback_id
from mailer.mail.senders import Result, Sender
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    EditionVariant,
    Reader,
    ReaderStatus,
    utcnow,
)
from mailer.models.base import DbSession
from mailer.readers import load_publication

log = logging.getLogger(__name__)



class SkeletonCache:
    """MIME skeletons per variant, built once per lane (and reused by the process)."""

    def __init__(self, settings: Settings, dkim: DkimSigner | None) -> None:
        self.settings = settings
        self.dkim = dkim
        self._items: dict[int, MessageSkeleton] = {}

    def get(self, session: DbSession, edition_id: int, variant_id: int) -> MessageSkeleton:
        skeleton = self._items.get(variant_id)
        if skeleton is None:
            variant = session.get(EditionVariant, variant_id)
            if variant is None:
                raise LookupError(f"variant {variant_id} is gone")
            edition = session.get(Edition, edition_id)
            digest = edition.digest if edition is not None else None
            skeleton = MessageSkeleton(
                subject=variant.subject,
                html=variant.html,
                text=variant.text,
                mail_from=load_publication(session, self.settings).from_header(
                    self.settings.mail_from),
                reply_to=self.settings.reply_to,
                unsubscribe_mailto=self.settings.unsubscribe_mailto,
                secret=self.settings.secret_key,
                edition_id=edition_id,
                extra_headers={"X-Mailer-Edition": str(edition_id)},
                dkim=self.dkim,
                list_id=digest_list_id(self.settings, digest.name, digest.id) if digest else "",
                feedback_id=feedback_id(self.settings, f"e{edition_id}",
                                        f"d{digest.id}" if digest else "", "digest"),
            )
            if len(self._items) > 64:
                self._items.clear()
            self._items[variant_id] = skeleton
        return skeleton


def recipient_for(settings: Settings, tokens: Tokens, reader: ReaderRow) -> Recipient:
    unsub = tokens.reader_token(Purpose.UNSUBSCRIBE, reader.id, reader.token_nonce)
    prefs = tokens.reader_token(Purpose.PREFERENCES, reader.id, reader.token_nonce)
    return Recipient(
        reader_id=reader.id,
        email=reader.email,
        name=reader.name,
        token_nonce=reader.token_nonce,
        unsubscribe_url=f"{settings.base_url}/unsubscribe/{unsub}",
        preferences_url=f"{settings.base_url}/preferences/{prefs}",
        unsubscribe_token=unsub,
    )


def run_lane(
    session: DbSession,
    edition_id: int,
    *,
    settings: Settings,
    sender: Sender,
    tokens: Tokens,
    skeletons: SkeletonCache,
    limiter: RateLimiter | None = None,
    budget_seconds: float = 20.0,
    clock: Callable[[], float] = time.monotonic,
    should_stop: Callable[[], bool] = lambda: False,
) -> LaneReport:
    """Send claimed chunks of one edition until it is done, paused, or this lane's
    time budget runs out (then the lane re-enqueues itself, letting other work in).
    `should_stop` (a warm shutdown of the worker) is asked between messages: the
    lane then hands back what it claimed and re-enqueues itself."""
    limiter = limiter or NoLimit()
    worker = worker_name()
    ledger = LedgerWriter(session, worker, settings)
    report = ledger.report
    verp = bool(settings.return_path)
    envelope_from = envelope_sender(settings)  # parsed once, not per message
    # Longest sleep for a rate-limit slot; a longer wait defers the row. Kept
    # well under the claim lease so heartbeats keep our claims alive.
    inline_wait = min(1.0, settings.claim_lease_seconds / 4)
    started = clock()
    last_heartbeat = started
    try:
        while True:
            status = session.scalar(select(Edition.status).where(Edition.id == edition_id))
            if status != EditionStatus.SENDING:
                report.stopped = f"edition is {status}"
                break
            now = utcnow()
            rows = claim_batch(session, edition_id, worker, settings.batch_size, now)
            session.commit()
            if not rows:
                soon = _next_due_in(session, edition_id, now)
                if soon is not None and soon <= 5 and clock() - started + soon < budget_seconds:
                    # Retries or deferred rows are due in a moment: wait here
                    # rather than leave them to the sweeper's next round.
                    ledger.flush()
                    session.commit()
                    time.sleep(max(soon, 0.05))
                    continue
                report.stopped = "nothing to claim"
                finish_if_complete(session, edition_id)
                break
            report.claimed += len(rows)
            readers = {
                r.id: ReaderRow(*r)
                for r in session.execute(
                    select(Reader.id, Reader.email, Reader.name, Reader.status, Reader.frequency,
                           Reader.token_nonce)
                    .where(Reader.id.in_([r[1] for r in rows]))
                )
            }
            first_planned = session.scalar(
                select(func.min(Delivery.created_at)).where(Delivery.id.in_([r[0] for r in rows]))
            ) or now
            gone = [d for d, r, _ in rows if r not in readers or readers[r].status
                    != ReaderStatus.CONFIRMED or readers[r].frequency == "paused"]
            ledger.skip(gone, "reader unsubscribed or suppressed after planning")
            session.commit()
            skip = set(gone)
            stopping = False
            for delivery_id, reader_id, variant_id in rows:
                if delivery_id in skip:
                    continue
                if should_stop():
                    stopping = True
                    break
                if clock() - last_heartbeat > settings.claim_lease_seconds / 3:
                    heartbeat(session, worker)
                    last_heartbeat = clock()
                reader = readers[reader_id]
                skeleton = skeletons.get(session, edition_id, variant_id or 0)
                data = skeleton.render(recipient_for(settings, tokens, reader))
                domain = reader.email.rpartition("@")[2].lower()
                wait = limiter.acquire(domain, max_wait=inline_wait)
                if wait > 0:
                    # A capped or slowed-down domain: hand the row back for later
                    # instead of holding up every other domain in this lane.
                    ledger.defer(delivery_id, wait)
                    continue
                try:
                    outcome = sender.send(
                        envelope_sender(settings, delivery_id) if verp else envelope_from,
                        reader.email, data,
                        before_data=partial(ledger.mark_sending, delivery_id),
                    )
                except ClaimLost:
                    log.warning("delivery %s was reclaimed by the sweeper; not sent", delivery_id)
                    continue
                if outcome.sent:
                    ledger.sent(delivery_id)
                else:
                    ledger.outcome(delivery_id, reader, outcome, first_planned)
                    if outcome.result == Result.TEMPORARY and outcome.code in THROTTLE_CODES:
                        limiter.slow_down(domain)
            ledger.flush()
            session.execute(
                update(Edition).where(Edition.id == edition_id).values(last_activity_at=utcnow())
            )
            session.commit()
            if stopping or clock() - started > budget_seconds:
                enqueue_on_commit(session, TaskName.SEND_LANE, edition_id)
                session.commit()
                report.stopped = ("worker shutting down" if stopping else "time budget used") + \
                    "; re-enqueued"
                break
    finally:
        try:
            ledger.release()
        except Exception:
            session.rollback()
            log.exception("could not release claims of %s; the sweeper will", worker)
        finally:
            ledger.close()
    return report


def _next_due_in(session: DbSession, edition_id: int, now: datetime) -> float | None:
    """Seconds until the edition's next retry row is due (None: there is none)."""
    due = session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.RETRY)
    )
    return None if due is None else (due - now).total_seconds()
