"""Delivering the webhook outbox: at least once, signed, retried for about a day.

Each round claims a few due messages *per endpoint* and calls the endpoints in
parallel threads (HTTP only; the database is written from the calling thread).
An endpoint stops for the round at its first failure, so one that hangs costs
one short timeout and never holds up the others. Failures are retried on the
Standard Webhooks schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: ~27 h);
a message that exhausts it fails, and its endpoint is disabled, with the reason
shown, when it has had no success for a day.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from mailer.database import on_postgres
from mailer.delivery.ledger import worker_name
from mailer.models import WebhookEndpoint, WebhookMessage, WebhookStatus, utcnow
from mailer.models.base import DbSession
from mailer.webhooks.http import PostResult, _post

log = logging.getLogger(__name__)

RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)  # seconds after each failure
DISABLE_AFTER = timedelta(hours=24)  # failing this long when a message gives up: disable
PER_ENDPOINT = 10  # messages claimed per endpoint per round
MAX_ENDPOINTS = 32  # endpoints per round
CALL_TIMEOUT = 10.0  # seconds, the whole call
ENDPOINT_BUDGET = 15.0  # seconds one endpoint may take in a round
CLAIM_LEASE = timedelta(minutes=5)

Post = Callable[[str, bytes, dict[str, str], bool], PostResult]


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the decoded secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, msg_id: str, body: str, timestamp: int | None = None
                   ) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {"Content-Type": "application/json", "User-Agent": "mailer-webhooks/1",
            "webhook-id": msg_id, "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, msg_id, stamp, body)}


@dataclass
class WebhookReport:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    released: int = 0
    disabled: int = 0
    more: bool = False


@dataclass(frozen=True)
class _Claimed:
    id: int
    msg_id: str
    body: str


KEEP_DAYS = 30  # the delivery log keeps finished calls this long


def purge_finished(session: DbSession, now: datetime | None = None) -> int:
    """Drop sent and failed calls older than KEEP_DAYS (the log would grow forever)."""
    edge = (now or utcnow()) - timedelta(days=KEEP_DAYS)
    gone = session.execute(
        delete(WebhookMessage)
        .where(WebhookMessage.status.in_([WebhookStatus.SENT, WebhookStatus.FAILED]),
               WebhookMessage.created_at < edge)
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    session.commit()
    return int(gone or 0)


def due_count(session: DbSession, now: datetime | None = None) -> int:
    found = session.scalar(
        select(WebhookMessage.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookMessage.endpoint_id)
        .where(WebhookEndpoint.enabled.is_(True), WebhookMessage.status.in_(WebhookStatus.DUE),
               WebhookMessage.next_attempt_at <= (now or utcnow())).limit(1))
    session.commit()
    return 0 if found is None else 1


def _claim(session: DbSession, worker: str, now: datetime) -> dict[int, list[_Claimed]]:
    """Up to PER_ENDPOINT due messages of each of up to MAX_ENDPOINTS endpoints."""
    # Claims a dead worker left: back to due (an unfinished call is simply retried).
    session.execute(update(WebhookMessage)
                    .where(WebhookMessage.status == WebhookStatus.CLAIMED,
                           WebhookMessage.claimed_at < now - CLAIM_LEASE)
                    .values(status=WebhookStatus.RETRY, claimed_by="")
                    .execution_options(synchronize_session=False))
    # An endpoint whose calls another worker has in flight is left to that worker: one
    # caller per endpoint, so a hanging endpoint ties up one task, never every slot.
    in_flight = select(WebhookMessage.endpoint_id).where(
        WebhookMessage.status == WebhookStatus.CLAIMED)
    endpoint_ids = list(session.scalars(
        select(WebhookMessage.endpoint_id).distinct()
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookMessage.endpoint_id)
        .where(WebhookEndpoint.enabled.is_(True), WebhookMessage.status.in_(WebhookStatus.DUE),
               WebhookMessage.next_attempt_at <= now,
               WebhookMessage.endpoint_id.not_in(in_flight)).limit(MAX_ENDPOINTS)))
    claimed: dict[int, list[_Claimed]] = {}
    for endpoint_id in endpoint_ids:
        due = (select(WebhookMessage.id)
               .where(WebhookMessage.endpoint_id == endpoint_id,
                      WebhookMessage.status.in_(WebhookStatus.DUE),
                      WebhookMessage.next_attempt_at <= now)
               .order_by(WebhookMessage.id).limit(PER_ENDPOINT))
        if on_postgres(session):
            due = due.with_for_update(skip_locked=True)
        rows = session.execute(
            update(WebhookMessage).where(WebhookMessage.id.in_(due.scalar_subquery()))
            .values(status=WebhookStatus.CLAIMED, claimed_by=worker, claimed_at=now)
            .returning(WebhookMessage.id, WebhookMessage.msg_id, WebhookMessage.body)
            .execution_options(synchronize_session=False)).all()
        if rows:
            claimed[endpoint_id] = sorted((_Claimed(*r) for r in rows), key=lambda c: c.id)
    session.commit()
    return claimed


def _call_endpoint(url: str, secret: str, messages: list[_Claimed], allow_private: bool,
                   post: Post) -> list[tuple[_Claimed, PostResult | None]]:
    """Runs in a thread, no database: POST each message in order; stop at the first
    failure or when the endpoint's budget is spent (None: not attempted)."""
    started = time.monotonic()
    results: list[tuple[_Claimed, PostResult | None]] = []
    stopped = False
    for message in messages:
        if stopped or time.monotonic() - started > ENDPOINT_BUDGET:
            results.append((message, None))
            continue
        headers = signed_headers(secret, message.msg_id, message.body)
        result = post(url, message.body.encode("utf-8"), headers, allow_private)
        results.append((message, result))
        stopped = not result.ok
    return results


def _record(session: DbSession, endpoint: WebhookEndpoint, worker: str,
            results: list[tuple[_Claimed, PostResult | None]], report: WebhookReport) -> None:
    now = utcnow()
    mine = (WebhookMessage.claimed_by == worker, WebhookMessage.status == WebhookStatus.CLAIMED)
    # Messages not tried this round wait as long as the failure before them: an
    # endpoint that is down is not called again for each of its messages.
    resume_at = now
    for message, result in results:
        where = (WebhookMessage.id == message.id, *mine)
        if result is None:
            session.execute(update(WebhookMessage).where(*where).values(
                status=WebhookStatus.RETRY, claimed_by="", next_attempt_at=resume_at))
            report.released += 1
            continue
        if result.ok:
            session.execute(update(WebhookMessage).where(*where).values(
                status=WebhookStatus.SENT, claimed_by="", attempts=WebhookMessage.attempts + 1,
                last_status=result.status, last_error="", delivered_at=now))
            endpoint.last_success_at, endpoint.failing_since = now, None
            report.sent += 1
            continue
        attempts = (session.scalar(select(WebhookMessage.attempts)
                                   .where(WebhookMessage.id == message.id)) or 0) + 1
        error = (result.error or f"HTTP {result.status}")[:1000]
        values: dict[str, object] = {"attempts": attempts, "claimed_by": "",
                                     "last_status": result.status, "last_error": error}
        if endpoint.failing_since is None:
            endpoint.failing_since = now
        if attempts <= len(RETRY_SCHEDULE):
            values["status"] = WebhookStatus.RETRY
            values["next_attempt_at"] = now + timedelta(seconds=RETRY_SCHEDULE[attempts - 1])
            resume_at = max(resume_at, now + timedelta(seconds=RETRY_SCHEDULE[0]))
            report.retry += 1
        else:
            values["status"] = WebhookStatus.FAILED
            resume_at = max(resume_at, now + timedelta(seconds=RETRY_SCHEDULE[0]))
            report.failed += 1
            if endpoint.enabled and endpoint.failing_since <= now - DISABLE_AFTER:
                endpoint.enabled = False
                endpoint.disabled_reason = (
                    f"Disabled automatically on {now:%Y-%m-%d %H:%M} UTC: no successful call "
                    f"since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC. Last error: {error}"
                )[:2000]
                report.disabled += 1
        session.execute(update(WebhookMessage).where(*where).values(**values))
    session.commit()


def deliver_due(session: DbSession, *, allow_private: bool = False, post: Post | None = None,
                rearm: Callable[[], None] = lambda: None, budget_seconds: float = 12.0,
                clock: Callable[[], float] = time.monotonic) -> WebhookReport:
    """Call every endpoint that has messages due, round after round, until none is
    due or the time budget is spent."""
    post = post or _post
    report = WebhookReport()
    worker = worker_name()
    started = clock()
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook") as pool:
        while True:
            if clock() - started > budget_seconds:
                report.more = True
                return report
            rearm()
            claimed = _claim(session, worker, utcnow())
            if not claimed:
                return report
            endpoints = {e.id: e for e in session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.id.in_(list(claimed))))}
            futures = {
                pool.submit(_call_endpoint, endpoints[eid].url, endpoints[eid].secret, messages,
                            allow_private, post): eid
                for eid, messages in claimed.items() if eid in endpoints}
            # Each endpoint's outcome is recorded as soon as its calls are done.
            for future in as_completed(futures):
                endpoint = endpoints[futures[future]]
                try:
                    results = future.result()
                except Exception:
                    log.exception("webhook calls to endpoint %s failed", endpoint.id)
                    results = [(m, PostResult(None, "internal error")) for m in
                               claimed[endpoint.id]]
                _record(session, endpoint, worker, results, report)
