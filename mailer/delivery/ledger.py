"""The delivery engine: claim from the ledger, send, record. The database is the truth.

Life of a delivery row:

    pending --claim--> claimed --before DATA--> sending --250--> sent
                          |                         |--4xx--> retry --(later)--> claimed
                          |                         |--5xx--> failed (+ suppression)
                          |                         '--lost connection--> unknown
                          '--lane stops (pause)--> pending

A row is marked `sending` in the database *before* its message body goes out,
and `sent` right after the 250 (folded into the next row's `sending` write, so
one small UPDATE per message). A worker killed at any point therefore leaves
at most one row per connection in `sending`; the sweeper turns that row into
`unknown` (never re-sent automatically) and returns untouched `claimed` rows to
`pending`. Nobody gets a copy twice and nobody is skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import case, func, select, update
from sqlalchemy.engine import Engine

from mailer.config import Settings
from mailer.database import on_postgres
from mailer.mail.senders import Outcome, Result
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Reader,
    ReaderEvent,
    ReaderStatus,
    utcnow,
)
from mailer.models.base import DbSession
from mailer.readers.events import emit_event
from mailer.readers.subscriptions import suppress

log = logging.getLogger(__name__)

BACKOFF_STEPS = (60, 300, 900, 1800, 3600)  # seconds; the last repeats


class ClaimLost(Exception):
    """The sweeper gave our claimed row to someone else; do not send it."""


@dataclass
class LaneReport:
    claimed: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    deferred: int = 0
    stopped: str = ""


class ReaderRow(NamedTuple):
    """A snapshot of what sending needs; plain values, never expired by commits."""

    id: int
    email: str
    name: str
    status: str
    frequency: str


def backoff_seconds(attempts: int, base: float) -> float:
    step = BACKOFF_STEPS[min(max(attempts, 1), len(BACKOFF_STEPS)) - 1]
    return step * base / 60.0


def worker_name() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"



def claim_batch(
    session: DbSession, edition_id: int, worker: str, limit: int, now: datetime
) -> list[tuple[int, int, int | None]]:
    """Atomically take up to `limit` due rows: (delivery id, reader id, variant id).

    Due retries first, then pending rows. Each query walks the (edition_id,
    status) index without ORDER BY: ordering by id would make PostgreSQL walk
    past every row already sent, which at a million readers made each claim
    O(rows sent) and the whole send quadratic.
    """
    retry = select(Delivery.id).where(
        Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.RETRY,
        Delivery.next_attempt_at <= now)
    pending = select(Delivery.id).where(
        Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.PENDING)
    claimed: list[tuple[int, int, int | None]] = []
    for due in (retry, pending):
        want = limit - len(claimed)
        if want <= 0:
            break
        due = due.limit(want)
        if on_postgres(session):
            due = due.with_for_update(skip_locked=True)
        rows = session.execute(
            update(Delivery)
            .where(Delivery.id.in_(due.scalar_subquery()))
            .values(status=DeliveryStatus.CLAIMED, claimed_by=worker, claimed_at=now)
            .returning(Delivery.id, Delivery.reader_id, Delivery.variant_id)
            .execution_options(synchronize_session=False)
        ).all()
        claimed.extend((r[0], r[1], r[2]) for r in rows)
    return sorted(claimed)


# The per-message write on PostgreSQL: one statement, one round trip (autocommit).
# It marks this row `sending` and the rows whose 250 came back since the last
# write `sent`. This form (an array of ids) is for the rare write after a gap.
_PG_MARK_SENDING_MANY = """
UPDATE deliveries SET
    status = CASE WHEN id = %(id)s THEN 'sending' ELSE 'sent' END,
    sent_at = CASE WHEN id = %(id)s THEN NULL ELSE %(now)s END,
    attempts = CASE WHEN id = %(id)s THEN attempts + 1 ELSE attempts END,
    smtp_code = CASE WHEN id = %(id)s THEN NULL ELSE 250 END,
    claimed_at = %(now)s
WHERE id = ANY(%(ids)s) AND claimed_by = %(worker)s AND status IN ('claimed', 'sending')
RETURNING id
"""
# The usual case, at most one row sent since the last write, as a statement
# prepared once and run through libpq directly ($1 id, $2 previous id, $3 time,
# $4 worker): psycopg's adaptation layer cost more CPU than the statement itself.
_PG_MARK_SENDING_LIBPQ = b"""
UPDATE deliveries SET
    status = CASE WHEN id = $1 THEN 'sending' ELSE 'sent' END,
    sent_at = CASE WHEN id = $1 THEN NULL ELSE $3::timestamptz END,
    attempts = CASE WHEN id = $1 THEN attempts + 1 ELSE attempts END,
    smtp_code = CASE WHEN id = $1 THEN NULL ELSE 250 END,
    claimed_at = $3::timestamptz
WHERE id IN ($1::bigint, $2::bigint) AND claimed_by = $4 AND status IN ('claimed', 'sending')
RETURNING id
"""
_PG_MARK_SENT = """
UPDATE deliveries SET status = 'sent', sent_at = %(now)s, smtp_code = 250
WHERE id = ANY(%(ids)s) AND claimed_by = %(worker)s AND status = 'sending'
"""


class _PgLedgerConnection:
    """A raw psycopg connection in autocommit mode for the hot per-message writes.

    Going through the ORM cost ~1 ms of CPU and three round trips (BEGIN,
    UPDATE, COMMIT) per message; this is one prepared statement and one trip.
    Durability is the same: each statement commits before the body goes out.
    """

    def __init__(self, session: DbSession, sync_commit: bool) -> None:
        from psycopg import pq

        engine = session.get_bind()
        assert isinstance(engine, Engine)
        self.pooled = engine.raw_connection()
        conn: Any = self.pooled.driver_connection  # a psycopg.Connection
        conn.autocommit = True
        if not sync_commit:
            # A worker crash never loses a commit; only a PostgreSQL crash could
            # drop the last few hundred ms of marks (MAILER_LEDGER_SYNC_COMMIT=1 to avoid).
            conn.execute("SET synchronous_commit TO OFF")
        self.conn: Any = conn
        self.pgconn = conn.pgconn
        self.tuples_ok = pq.ExecStatus.TUPLES_OK
        self.statement = f"mailer_mark_{uuid.uuid4().hex[:12]}".encode()
        result = self.pgconn.prepare(self.statement, _PG_MARK_SENDING_LIBPQ)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise RuntimeError(f"cannot prepare the ledger statement: {result.error_message!r}")

    def mark_sending(self, delivery_id: int, sent_ids: list[int], worker: str) -> set[int]:
        if len(sent_ids) <= 1:
            prev = sent_ids[0] if sent_ids else delivery_id
            result = self.pgconn.exec_prepared(self.statement, [
                str(delivery_id).encode(), str(prev).encode(), utcnow().isoformat().encode(),
                worker.encode()])
            if result.status != self.tuples_ok:
                raise RuntimeError(f"ledger write failed: {result.error_message!r}")
            return {int(result.get_value(i, 0) or 0) for i in range(result.ntuples)}
        rows = self.conn.execute(_PG_MARK_SENDING_MANY, {
            "id": delivery_id, "now": utcnow(), "worker": worker, "ids": [delivery_id, *sent_ids],
        }).fetchall()
        return {r[0] for r in rows}

    def mark_sent(self, sent_ids: list[int], worker: str) -> None:
        self.conn.execute(_PG_MARK_SENT, {"ids": sent_ids, "now": utcnow(), "worker": worker},
                          prepare=True)

    def close(self) -> None:
        try:
            self.conn.execute(b"DEALLOCATE " + self.statement)
            self.conn.execute("RESET synchronous_commit")
            self.conn.autocommit = False
            self.pooled.close()  # back to the pool
        except Exception:
            self.pooled.invalidate()


class LedgerWriter:
    """Writes outcomes for one lane; the `sent` marks ride on the next `sending` write."""

    def __init__(self, session: DbSession, worker: str, settings: Settings) -> None:
        self.session = session
        self.worker = worker
        self.settings = settings
        self.sent_ids: list[int] = []
        self.report = LaneReport()
        self.pg = (_PgLedgerConnection(session, settings.ledger_sync_commit)
                   if on_postgres(session) else None)

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()
            self.pg = None

    def mark_sending(self, delivery_id: int) -> None:
        if self.pg is not None:
            returned = self.pg.mark_sending(delivery_id, self.sent_ids, self.worker)
        else:
            returned = self._orm_mark_sending(delivery_id)
        self.report.sent += len(self.sent_ids)
        self.sent_ids.clear()
        if delivery_id not in returned:
            raise ClaimLost(delivery_id)

    def _orm_mark_sending(self, delivery_id: int) -> set[int]:
        now = utcnow()
        ids = [delivery_id, *self.sent_ids]
        returned = set(
            self.session.execute(
                update(Delivery)
                .where(
                    Delivery.id.in_(ids),
                    Delivery.claimed_by == self.worker,
                    Delivery.status.in_([DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]),
                )
                .values(
                    status=case(
                        (Delivery.id == delivery_id, DeliveryStatus.SENDING),
                        else_=DeliveryStatus.SENT,
                    ),
                    sent_at=case((Delivery.id == delivery_id, None), else_=now),
                    attempts=case(
                        (Delivery.id == delivery_id, Delivery.attempts + 1),
                        else_=Delivery.attempts,
                    ),
                    smtp_code=case((Delivery.id == delivery_id, None), else_=250),
                    claimed_at=now,
                )
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
        self.session.commit()
        return returned

    def sent(self, delivery_id: int) -> None:
        self.sent_ids.append(delivery_id)

    def flush(self) -> None:
        if not self.sent_ids:
            return
        if self.pg is not None:
            self.pg.mark_sent(self.sent_ids, self.worker)
        else:
            self.session.execute(
                update(Delivery)
                .where(
                    Delivery.id.in_(self.sent_ids),
                    Delivery.claimed_by == self.worker,
                    Delivery.status == DeliveryStatus.SENDING,
                )
                .values(status=DeliveryStatus.SENT, sent_at=utcnow(), smtp_code=250)
                .execution_options(synchronize_session=False)
            )
            self.session.commit()
        self.report.sent += len(self.sent_ids)
        self.sent_ids.clear()

    def outcome(self, delivery_id: int, reader: ReaderRow, outcome: Outcome,
                first_planned: datetime) -> None:
        """Record a failure of any kind (rare: written at once)."""
        self.flush()
        now = utcnow()
        values: dict[str, object] = {
            "smtp_code": outcome.code or None,
            "error": outcome.message[:1000],
            "claimed_at": now,
        }
        if not outcome.counted:  # mark_sending did not run for this attempt
            values["attempts"] = Delivery.attempts + 1
        deadline = first_planned + timedelta(hours=self.settings.retry_deadline_hours)
        if outcome.result == Result.TEMPORARY and now < deadline:
            attempts = (self.session.scalar(
                select(Delivery.attempts).where(Delivery.id == delivery_id)) or 0) + (
                0 if outcome.counted else 1)
            values["status"] = DeliveryStatus.RETRY
            values["next_attempt_at"] = now + timedelta(
                seconds=backoff_seconds(attempts, self.settings.retry_base_seconds))
            self.report.retry += 1
        elif outcome.result == Result.UNKNOWN:
            values["status"] = DeliveryStatus.UNKNOWN
            self.report.unknown += 1
        else:
            values["status"] = DeliveryStatus.FAILED
            if outcome.result == Result.TEMPORARY:
                values["error"] = f"retry deadline passed: {outcome.message}"[:1000]
            self.report.failed += 1
        self.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.claimed_by == self.worker)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if values["status"] == DeliveryStatus.FAILED:
            emit_event(self.session, "delivery.failed", {"delivery": {
                "id": delivery_id, "reader_id": reader.id, "email": reader.email,
                "smtp_code": outcome.code or None, "error": str(values["error"])[:300]}}, now)
        if outcome.result == Result.PERMANENT and outcome.stage == "envelope":
            # A hard bounce: the address does not exist. Never mail it again.
            self.session.execute(update(Reader).where(Reader.id == reader.id)
                                 .values(status=ReaderStatus.BOUNCED))
            suppress(self.session, reader.email, "bounce")
            self.session.add(ReaderEvent(reader_id=reader.id, kind="bounce",
                                         detail={"code": outcome.code, "smtp": outcome.message[:300]}))
        self.session.commit()

    def defer(self, delivery_id: int, seconds: float) -> None:
        """Give a claimed row back until a rate-limit slot is free (no attempt spent)."""
        self.flush()
        self.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.claimed_by == self.worker,
                   Delivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.RETRY, claimed_by="",
                    next_attempt_at=utcnow() + timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )
        self.session.commit()
        self.report.deferred += 1

    def skip(self, delivery_ids: list[int], reason: str) -> None:
        if not delivery_ids:
            return
        self.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.claimed_by == self.worker,
                   Delivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.SKIPPED, error=reason)
            .execution_options(synchronize_session=False)
        )
        self.report.skipped += len(delivery_ids)

    def release(self) -> None:
        """Give back rows we claimed but did not start (pause, shutdown)."""
        self.flush()
        self.session.execute(
            update(Delivery)
            .where(Delivery.claimed_by == self.worker, Delivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.PENDING, claimed_by="")
            .execution_options(synchronize_session=False)
        )
        self.session.commit()


def heartbeat(session: DbSession, worker: str) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.claimed_by == worker, Delivery.status == DeliveryStatus.CLAIMED)
        .values(claimed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()


def finish_if_complete(session: DbSession, edition_id: int) -> bool:
    outstanding = session.scalar(
        select(func.count()).select_from(Delivery).where(
            Delivery.edition_id == edition_id,
            Delivery.status.in_(DeliveryStatus.OUTSTANDING),
        )
    )
    if outstanding:
        return False
    done = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == EditionStatus.SENDING)
        .values(status=EditionStatus.DONE, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if done:
        emit_event(session, "edition.finished", {"edition": {"id": edition_id}})
    session.commit()
    return bool(done)
