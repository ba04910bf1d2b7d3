"""A send lane: claim a batch from the ledger, build each message from its
variant's skeleton, send them a group at a time over the lane's SMTP connections
(MAILER_LANE_CONNECTIONS; each group's rows marked `sending` in one statement
before any body goes out) and record the outcomes."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import NamedTuple

from sqlalchemy import func, select, update

from mailer.common.tokens import Purpose, Tokens
from mailer.config import Settings
from mailer.content.schedules import quiet_until
from mailer.delivery import warmup
from mailer.delivery.ledger import (
    DeadLanes,
    LaneReport,
    LedgerWriter,
    ReaderRow,
    claim_batch,
    finish_if_complete,
    heartbeat,
    is_disconnect,
    live_lanes,
    pause_for,
    relay_down,
    release_dead_lanes,
    worker_name,
)
from mailer.delivery.ratelimit import THROTTLE_CODES, NoLimit, RateLimiter
from mailer.jobs import TaskName, enqueue_on_commit
from mailer.mail.dkim import DkimSigner
from mailer.mail.messages import MessageSkeleton, Recipient
from mailer.mail.outgoing import digest_list_id, envelope_sender, feedback_id
from mailer.mail.senders import Envelope, Outcome, Result, Sender, send_many
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    Edition,
    EditionStatus,
    EditionVariant,
    Reader,
    ReaderStatus,
    SubjectTest,
    utcnow,
)
from mailer.models.base import DbSession
from mailer.readers import load_publication

log = logging.getLogger(__name__)



class SkeletonCache:
    """MIME skeletons per (variant, A/B subject), built once per lane (and reused
    by the process): a reader's subject costs no query."""

    def __init__(self, settings: Settings, dkim: DkimSigner | None) -> None:
        self.settings = settings
        self.dkim = dkim
        self._items: dict[tuple[int, int | None], MessageSkeleton] = {}

    def get(self, session: DbSession, edition_id: int, variant_id: int,
            subject_index: int | None = None) -> MessageSkeleton:
        skeleton = self._items.get((variant_id, subject_index))
        if skeleton is None:
            variant = session.get(EditionVariant, variant_id)
            if variant is None:
                raise LookupError(f"variant {variant_id} is gone")
            edition = session.get(Edition, edition_id)
            digest = edition.digest if edition is not None else None
            skeleton = MessageSkeleton(
                subject=_subject(session, edition_id, subject_index) or variant.subject,
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
            self._items[(variant_id, subject_index)] = skeleton
        return skeleton


def _subject(session: DbSession, edition_id: int, subject_index: int | None) -> str:
    """The A/B subject a ledger row names ("" when it names none)."""
    if subject_index is None:
        return ""
    test = session.get(SubjectTest, edition_id)
    subjects = test.subjects if test is not None else []
    return subjects[subject_index] if 0 <= subject_index < len(subjects) else ""


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


# Waits between reconnection attempts while no relay answers (the last repeats).
# Capped at 2 s: a relay back from a short outage is used again within 2 s, and a
# probe (a refused connect) every 2 s per lane costs nothing while it stays down.
RELAY_BACKOFF = (0.5, 1.0, 2.0)
# How often a lane re-reads its edition's status while working through a chunk.
STATUS_CHECK_SECONDS = 1.0
# How often a running lane looks for dead lanes of its edition (PostgreSQL).
DEAD_LANE_CHECK_SECONDS = 2.0
# Consecutive lost database connections a lane rides out before it gives up
# (the task fails; the sweeper re-queues the edition's lanes).
MAX_DB_LOSSES = 20


class BreakerWindow:
    """The last N attempts of one edition seen by this process: sent or failed for good.

    Kept per process (lanes of one edition in one process share it) and restarted
    when the edition's `breaker_reset_at` changes (a resume)."""

    def __init__(self, size: int, marker: object = None) -> None:
        self.items: deque[bool] = deque(maxlen=max(1, size))
        self.failed = 0
        self.marker = marker
        self.lock = threading.Lock()

    def reset_if_changed(self, marker: object) -> None:
        if marker != self.marker:
            with self.lock:
                self.items.clear()
                self.failed = 0
                self.marker = marker

    def note(self, failed: bool) -> None:
        with self.lock:
            if len(self.items) == self.items.maxlen and self.items[0]:
                self.failed -= 1
            self.items.append(failed)
            self.failed += failed

    def tripped(self, rate: float, min_attempts: int) -> str:
        with self.lock:
            n, failed = len(self.items), self.failed
        if n >= max(1, min_attempts) and failed > rate * n:
            return (f"{failed} of the last {n} attempts failed permanently "
                    f"(more than {rate:.0%}); check the relay and the list before resuming")
        return ""


_windows: dict[int, BreakerWindow] = {}
_windows_lock = threading.Lock()


def breaker_window(edition_id: int, size: int) -> BreakerWindow:
    with _windows_lock:
        window = _windows.get(edition_id)
        if window is None:
            if len(_windows) > 64:
                _windows.clear()
            window = _windows[edition_id] = BreakerWindow(size)
        return window


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
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
) -> LaneReport:
    """Send claimed chunks of one edition until it is done, paused, or this lane's
    time budget runs out (then the lane re-enqueues itself, letting other work in).

    Faults it rides out by itself: a lost database connection (replaced, the
    round repeated), a relay that refuses or drops connections (rows back to
    `pending`, reconnect with a short back-off, the edition shows since when),
    dead lanes of the same edition (looked for every 2 s and when this lane runs
    dry: their rows are repaired and replacement lanes queued). It pauses the
    edition (circuit breaker) on a misconfigured relay, a relay down for
    `relay_down_pause_seconds`, or too many permanent failures, and in the
    digest's quiet hours or when the warm-up cap of the day is used. `should_stop`
    (a warm shutdown of the worker) is asked between messages: the lane then hands
    back what it claimed and re-enqueues itself.
    """
    limiter = limiter or NoLimit()
    worker = worker_name()
    ledger = LedgerWriter(session, worker, settings, edition_id)
    report = ledger.report
    window = breaker_window(edition_id, settings.breaker_window)
    verp = bool(settings.return_path)
    envelope_from = envelope_sender(settings)  # parsed once, not per message
    # Longest sleep for a rate-limit slot; a longer wait defers the row. Kept
    # well under the claim lease so heartbeats keep our claims alive.
    inline_wait = min(1.0, settings.claim_lease_seconds / 4)
    started = clock()
    last_heartbeat = [started]  # shared with the rounds
    last_dead_check = [started]
    db_losses = 0
    try:
        while True:
            try:
                stop = _lane_round(
                    session, edition_id, settings=settings, sender=sender, tokens=tokens,
                    skeletons=skeletons, limiter=limiter, ledger=ledger, window=window,
                    worker=worker, envelope_from=envelope_from, inline_wait=inline_wait,
                    sending_domain=envelope_from.rpartition("@")[2].lower(),
                    started=started, budget_seconds=budget_seconds, clock=clock, sleep=sleep,
                    last_heartbeat=last_heartbeat, last_dead_check=last_dead_check,
                    verp=verp, should_stop=should_stop,
                )
                db_losses = 0
                if stop:
                    report.stopped = stop
                    break
            except Exception as exc:
                if not is_disconnect(exc) or db_losses >= MAX_DB_LOSSES:
                    raise
                db_losses += 1
                log.warning("lane %s: database connection lost (%s); reconnecting",
                            worker, type(exc).__name__)
                sleep(min(0.05 * db_losses, 0.5))
                try:
                    ledger.reconnect()
                    ledger.release()  # claimed rows go back; `sending` rows stay as they are
                except Exception as again:
                    if not is_disconnect(again):
                        raise
    finally:
        try:
            ledger.release()
        except Exception:
            session.rollback()
            log.exception("could not release claims of %s; the sweeper will", worker)
        finally:
            ledger.close()
    return report


def _lane_round(
    session: DbSession,
    edition_id: int,
    *,
    settings: Settings,
    sender: Sender,
    tokens: Tokens,
    skeletons: SkeletonCache,
    limiter: RateLimiter,
    ledger: LedgerWriter,
    window: BreakerWindow,
    worker: str,
    envelope_from: str,
    sending_domain: str,
    inline_wait: float,
    started: float,
    budget_seconds: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    last_heartbeat: list[float],
    last_dead_check: list[float],
    verp: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    """One claimed chunk. Returns why the lane stops, or "" to go on."""
    report = ledger.report
    row = session.execute(
        select(Edition.status, Edition.breaker_reset_at, Digest.quiet_hours, Digest.timezone,
               Edition.local_send)
        .join(Digest, Digest.id == Edition.digest_id)
        .where(Edition.id == edition_id)).one_or_none()
    if row is None or row[0] != EditionStatus.SENDING:
        return f"edition is {row[0] if row else None}"
    window.reset_if_changed(row[1])
    # A reader-local edition reaches each reader at their own chosen hour: the
    # digest's quiet hours (one zone's night) do not apply to it.
    until = None if row[4] else quiet_until(row[2], row[3], utcnow())
    if until is not None:
        ledger.release()
        pause_for(session, edition_id, f"quiet hours {row[2]} ({row[3]}); resumes at "
                                       f"{until:%Y-%m-%d %H:%M} UTC", resume_at=until)
        return "paused: quiet hours"
    if clock() - last_dead_check[0] >= DEAD_LANE_CHECK_SECONDS:
        # Every lane watches its edition's other lanes: a dead one (its worker
        # was killed) has its rows repaired within seconds, and is replaced.
        last_dead_check[0] = clock()
        _replace_dead_lanes(session, edition_id, settings)
    now = utcnow()
    limit = settings.batch_size
    if settings.warmup is not None:
        limit, cap = warmup.take_slots(session, settings, sending_domain, limit, now)
        if not limit:
            if _next_due_in(session, edition_id, now) is None and not session.scalar(
                    select(func.count()).select_from(Delivery).where(
                        Delivery.edition_id == edition_id,
                        Delivery.status == DeliveryStatus.PENDING)):
                finish_if_complete(session, edition_id)
                return "nothing to claim"  # nothing left: no reason to wait for tomorrow
            ledger.release()
            resume = warmup.next_day(now)
            pause_for(session, edition_id, f"warm-up: the {cap} messages allowed today from "
                                           f"{sending_domain} are sent; resumes at "
                                           f"{resume:%Y-%m-%d %H:%M} UTC", resume_at=resume)
            return "paused: warm-up cap"
    rows = claim_batch(session, edition_id, worker, limit, now)
    session.commit()
    if settings.warmup is not None:
        warmup.give_back(session, sending_domain, limit - len(rows), now)
    if not rows:
        dead = _replace_dead_lanes(session, edition_id, settings)
        if dead.released:
            return ""  # a dead lane's rows are pending again: take them
        in_budget = clock() - started < budget_seconds
        if dead.suspects and in_budget:
            sleep(0.5)  # a lane that may be dead: look again once its grace is over
            return ""
        soon = _next_due_in(session, edition_id, now)
        if soon is not None and soon <= 5 and clock() - started + soon < budget_seconds:
            # Retries or deferred rows are due in a moment: wait here
            # rather than leave them to the sweeper's next round.
            ledger.flush()
            session.commit()
            sleep(max(soon, 0.05))
            return ""
        finish_if_complete(session, edition_id)
        return "nothing to claim"
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
    gone = [d for d, r, _, _ in rows if r not in readers or readers[r].status
            != ReaderStatus.CONFIRMED or readers[r].frequency == "paused"]
    ledger.skip(gone, "reader unsubscribed or suppressed after planning")
    skip = set(gone)
    sent_before = report.sent + len(ledger.sent_ids)
    stop: str | None = None  # "": the relay was down and is back; else why the lane stops
    stopping = False
    width = max(1, settings.lane_connections)
    group: list[_Pending] = []
    send_group = partial(_send_group, session, edition_id, settings=settings, sender=sender,
                         ledger=ledger, window=window, limiter=limiter,
                         first_planned=first_planned, started=started,
                         budget_seconds=budget_seconds, clock=clock, sleep=sleep)
    tripped = False  # the circuit breaker paused the edition
    halted = ""  # an editor paused or cancelled the edition during this chunk
    last_status_check = clock()
    for delivery_id, reader_id, variant_id, subject_index in rows:
        if delivery_id in skip:
            continue
        if should_stop():
            stopping = True
            break
        if clock() - last_status_check >= STATUS_CHECK_SECONDS:
            # A chunk may take a while (rate limits, slow relays): a pause or cancel
            # takes effect within about a second, not at the end of the chunk.
            last_status_check = clock()
            status = session.scalar(select(Edition.status).where(Edition.id == edition_id))
            session.commit()
            if status != EditionStatus.SENDING:
                halted = f"edition is {status}"
                break
        if clock() - last_heartbeat[0] > settings.claim_lease_seconds / 3:
            heartbeat(session, worker)
            last_heartbeat[0] = clock()
        reader = readers[reader_id]
        domain = reader.email.rpartition("@")[2].lower()
        wait = limiter.acquire(domain, max_wait=inline_wait)
        if wait > 0:
            # A capped or slowed-down domain: hand the row back for later
            # instead of holding up every other domain in this lane.
            ledger.defer(delivery_id, wait)
            continue
        skeleton = skeletons.get(session, edition_id, variant_id or 0, subject_index)
        finish = skeleton.render_later(recipient_for(settings, tokens, reader))
        group.append(_Pending(delivery_id, reader, domain, Envelope(
            envelope_sender(settings, delivery_id) if verp else envelope_from, reader.email,
            _signing_pool().submit(finish) if skeleton.dkim is not None else finish())))
        if len(group) >= width:
            stop, group, tripped = send_group(group)
            if stop is not None:
                break
    while group and stop is None and not stopping and not halted:
        stop, group, tripped = send_group(group)  # rows whose connection was not there
    if tripped:
        return stop or ""
    ledger.flush()
    values: dict[str, object] = {"last_activity_at": utcnow()}
    if report.sent > sent_before:
        values["relay_unreachable_since"] = None
    session.execute(update(Edition).where(Edition.id == edition_id).values(**values))
    session.commit()
    if halted:
        ledger.release()  # claimed rows not yet marked `sending` go back to `pending`
        return halted
    if stop:
        return stop
    if stopping or clock() - started > budget_seconds:
        enqueue_on_commit(session, TaskName.SEND_LANE, edition_id)
        session.commit()
        return ("worker shutting down" if stopping else "time budget used") + "; re-enqueued"
    return ""


# DKIM signatures are made by these threads while the lane builds the rest of its
# group and waits for the database and the relay (OpenSSL's RSA lets other
# threads run). One pool per process, made after a fork.
SIGNING_THREADS = 2
_signing: dict[int, ThreadPoolExecutor] = {}
_signing_lock = threading.Lock()


def _signing_pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    pool = _signing.get(pid)
    if pool is None:
        with _signing_lock:
            pool = _signing.get(pid)
            if pool is None:
                _signing.clear()
                pool = _signing[pid] = ThreadPoolExecutor(SIGNING_THREADS,
                                                          thread_name_prefix="dkim-sign")
    return pool


class _Pending(NamedTuple):
    """A claimed row whose message is built, waiting for its group to go out."""

    delivery_id: int
    reader: ReaderRow
    domain: str
    envelope: Envelope


def _send_group(
    session: DbSession,
    edition_id: int,
    group: list[_Pending],
    *,
    settings: Settings,
    sender: Sender,
    ledger: LedgerWriter,
    window: BreakerWindow,
    limiter: RateLimiter,
    first_planned: datetime,
    started: float,
    budget_seconds: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[str | None, list[_Pending], bool]:
    """Send a group of messages at once (one per SMTP connection), their rows marked
    `sending` in one statement before any body goes out, and record every outcome.

    Returns (why the lane stops, or None to go on; the rows not attempted, to go
    in the next group; whether the breaker paused the edition). A relay failure
    gives every unsent row of the chunk back and waits for the relay ("" when it
    is back); the breaker pauses once every outcome of the group is recorded."""
    lost: set[int] = set()

    def before_data(indices: list[int]) -> set[int]:
        ids = [group[i].delivery_id for i in indices]
        ours = ledger.mark_sending_group(ids)
        lost.update(set(ids) - ours)
        return {i for i in indices if group[i].delivery_id in ours}

    outcomes = send_many(sender, [p.envelope for p in group], before_data)
    carry: list[_Pending] = []
    relay: Outcome | None = None
    tripped = ""
    for pending, outcome in zip(group, outcomes, strict=True):
        delivery_id = pending.delivery_id
        if outcome is None:
            if delivery_id in lost:
                log.warning("delivery %s was reclaimed by the sweeper; not sent", delivery_id)
            else:
                carry.append(pending)  # its connection was not there: next group
            continue
        if outcome.sent:
            ledger.sent(delivery_id)
            window.note(False)
            continue
        if outcome.result in (Result.RELAY, Result.MISCONFIGURED):
            # The relay, not this reader: nothing was delivered.
            ledger.back_to_pending(delivery_id, outcome)
            relay = relay or outcome
            continue
        ledger.outcome(delivery_id, pending.reader, outcome, first_planned)
        if outcome.result == Result.TEMPORARY and outcome.code in THROTTLE_CODES:
            limiter.slow_down(pending.domain)
        if outcome.result == Result.PERMANENT:
            window.note(True)
            tripped = tripped or window.tripped(settings.breaker_failure_rate,
                                                settings.breaker_min_attempts)
    if tripped:
        ledger.release()
        pause_for(session, edition_id, tripped)
        return "paused: " + tripped, [], True
    if relay is not None:
        # Give every row of the chunk not yet sent back and wait for the relay.
        ledger.release()
        return _wait_for_relay(session, edition_id, settings, sender, relay, started,
                               budget_seconds, clock, sleep), [], False
    return None, carry, False


def _replace_dead_lanes(session: DbSession, edition_id: int, settings: Settings) -> DeadLanes:
    dead = release_dead_lanes(session, edition_id, settings.dead_lane_grace_seconds)
    if dead.workers:
        # Their tasks may be gone with their worker (a broker only re-delivers
        # after its visibility timeout): queue replacements, up to the lane count.
        live = live_lanes(session, edition_id) or 0
        for _ in range(min(len(dead.workers), max(0, settings.send_lanes - live))):
            enqueue_on_commit(session, TaskName.SEND_LANE, edition_id)
        session.commit()
    return dead


def _wait_for_relay(session: DbSession, edition_id: int, settings: Settings, sender: Sender,
                    outcome: Outcome, started: float, budget_seconds: float,
                    clock: Callable[[], float], sleep: Callable[[float], None]) -> str:
    """Reconnect with a short capped back-off until a relay answers (returns ""),
    the edition stops, the lane's budget runs out, or the breaker pauses it."""
    attempt = 0
    while True:
        if outcome.result == Result.MISCONFIGURED:
            pause_for(session, edition_id, f"relay misconfigured: {outcome.message}")
            return "paused: relay misconfigured"
        status, since = relay_down(session, edition_id, utcnow())
        if status != EditionStatus.SENDING:
            return f"edition is {status}"
        down_for = (utcnow() - since).total_seconds()
        if down_for >= settings.relay_down_pause_seconds:
            pause_for(session, edition_id, f"no relay reachable since {since:%Y-%m-%d %H:%M:%S} "
                                           f"UTC: {outcome.message}")
            return "paused: relay unreachable"
        if clock() - started > budget_seconds:
            enqueue_on_commit(session, TaskName.SEND_LANE, edition_id)
            session.commit()
            return "relay unreachable; re-enqueued"
        sleep(RELAY_BACKOFF[min(attempt, len(RELAY_BACKOFF) - 1)])
        attempt += 1
        failure = sender.probe()
        if failure is None:
            session.execute(update(Edition).where(Edition.id == edition_id)
                            .values(relay_unreachable_since=None))
            session.commit()
            return ""
        outcome = failure


def _next_due_in(session: DbSession, edition_id: int, now: datetime) -> float | None:
    """Seconds until the edition's next retry row is due (None: there is none)."""
    due = session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.RETRY)
    )
    return None if due is None else (due - now).total_seconds()
