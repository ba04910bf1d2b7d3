"""The delivery engine: claim from the ledger, send, record. The database is the truth.

Life of a delivery row:

    pending --claim--> claimed --before DATA--> sending --250--> sent
                          |                         |--4xx--> retry --(later)--> claimed
                          |                         |--5xx--> failed (+ suppression)
                          |                         '--lost connection--> unknown
                          '--lane stops (pause)--> pending

A row is marked `sending` in the database *before* its message body goes out,
and `sent` after the 250 (folded into the next `sending` write). A lane sends a
group of messages at once, one per SMTP connection, and marks the whole group
`sending` in one statement (`mark_sending_group`): one UPDATE per group, not
per message. A worker killed at any point therefore leaves at most one row per
connection in `sending`; the sweeper turns that row into
`unknown` (never re-sent automatically) and returns untouched `claimed` rows to
`pending`. Nobody gets a copy twice and nobody is skipped.

On PostgreSQL each lane holds a session advisory lock (keyed by its worker
name) on its ledger connection for as long as it runs. A dead worker's
connection closes with it and the lock is free at once, so the sweeper and
other lanes tell a dead lane from a slow one in seconds instead of waiting for
the claim lease (`release_dead_lanes`). SQLite keeps the lease.

A lost database connection (server restart, `pg_terminate_backend`) is
replaced and the write repeated (`LedgerWriter._write`); every write here is a
conditional UPDATE that can safely run twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import psycopg
from sqlalchemy import and_, case, delete, exists, func, not_, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from mailer.common.errors import Conflict, NotFound, ValidationError
from mailer.config import Settings
from mailer.database import on_postgres
from mailer.jobs import start_lanes_on_commit
from mailer.mail.senders import Outcome, Result
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionFigures,
    EditionStatus,
    Frequency,
    Reader,
    ReaderEvent,
    ReaderStatus,
    Suppression,
    utcnow,
)
from mailer.models.base import DbSession
from mailer.readers.events import emit_event
from mailer.readers.subscriptions import email_hash, suppress

log = logging.getLogger(__name__)

BACKOFF_STEPS = (60, 300, 900, 1800, 3600)  # seconds; the last repeats
# First key of every lane's advisory lock (two-int form), so lanes never collide
# with other users of advisory locks in the same database.
LANE_LOCK_SPACE = 0x6D6C  # "ml"
# Every lane also holds a shared lock (EDITION_LANES_SPACE, edition id): the
# number of holders is the number of live lanes of that edition (`live_lanes`).
EDITION_LANES_SPACE = 0x6D6D
# Waits between attempts of a write whose database connection was lost (~4 s in all).
RECONNECT_WAITS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)

T = TypeVar("T")


class LedgerConnectionLost(Exception):
    """The raw ledger connection broke (server restart, terminated backend)."""


def is_disconnect(exc: BaseException) -> bool:
    """Whether `exc` means the database connection went away (worth reconnecting)."""
    if isinstance(exc, LedgerConnectionLost | psycopg.OperationalError | psycopg.InterfaceError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(
            exc.orig, psycopg.OperationalError | psycopg.InterfaceError)
    return False


def lane_lock_key(worker: str) -> int:
    """The second key of a lane's advisory lock (a signed 32-bit int)."""
    digest = hashlib.blake2b(worker.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


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
    token_nonce: str = ""  # signed into the reader's links (see common/tokens.py)


def backoff_seconds(attempts: int, base: float) -> float:
    step = BACKOFF_STEPS[min(max(attempts, 1), len(BACKOFF_STEPS)) - 1]
    return step * base / 60.0


def worker_name() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"



def claim_batch(
    session: DbSession, edition_id: int, worker: str, limit: int, now: datetime
) -> list[tuple[int, int, int | None, int | None]]:
    """Atomically take up to `limit` due rows: (delivery id, reader id, variant id,
    subject index of an A/B test). `held` rows (waiting for a test's winner) are never taken.

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
    claimed: list[tuple[int, int, int | None, int | None]] = []
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
            .returning(Delivery.id, Delivery.reader_id, Delivery.variant_id, Delivery.subject_index)
            .execution_options(synchronize_session=False)
        ).all()
        claimed.extend((r[0], r[1], r[2], r[3]) for r in rows)
    return sorted(claimed)


def _with_statuses(sql: str) -> str:
    """Raw SQL of the hot path with its status names taken from DeliveryStatus."""
    return sql.format(**{status.name.lower(): status.value for status in DeliveryStatus})


# The per-message write on PostgreSQL: one statement, one round trip (autocommit).
# It marks this row `sending` and the rows whose 250 came back since the last
# write `sent`. This form (an array of ids) is for the rare write after a gap.
_PG_MARK_SENDING_MANY = _with_statuses("""
UPDATE deliveries SET
    status = CASE WHEN id = %(id)s THEN '{sending}' ELSE '{sent}' END,
    sent_at = CASE WHEN id = %(id)s THEN NULL ELSE %(now)s END,
    attempts = CASE WHEN id = %(id)s THEN attempts + 1 ELSE attempts END,
    smtp_code = CASE WHEN id = %(id)s THEN NULL ELSE 250 END,
    claimed_at = %(now)s
WHERE id = ANY(%(ids)s) AND claimed_by = %(worker)s AND status IN ('{claimed}', '{sending}')
RETURNING id
""")
# The usual case, at most one row sent since the last write, as a statement
# prepared once and run through libpq directly ($1 id, $2 previous id, $3 time,
# $4 worker): psycopg's adaptation layer cost more CPU than the statement itself.
_PG_MARK_SENDING_LIBPQ = _with_statuses("""
UPDATE deliveries SET
    status = CASE WHEN id = $1 THEN '{sending}' ELSE '{sent}' END,
    sent_at = CASE WHEN id = $1 THEN NULL ELSE $3::timestamptz END,
    attempts = CASE WHEN id = $1 THEN attempts + 1 ELSE attempts END,
    smtp_code = CASE WHEN id = $1 THEN NULL ELSE 250 END,
    claimed_at = $3::timestamptz
WHERE id IN ($1::bigint, $2::bigint) AND claimed_by = $4 AND status IN ('{claimed}', '{sending}')
RETURNING id
""").encode()
# Several rows `sending` at once (one per SMTP connection of the lane), the rows
# sent since the last write `sent`: one statement for a whole group of messages.
# $1 ids to mark sending, $2 ids sent, $3 time, $4 worker (arrays as text).
_PG_MARK_SENDING_GROUP = _with_statuses("""
UPDATE deliveries SET
    status = CASE WHEN id = ANY($1::bigint[]) THEN '{sending}' ELSE '{sent}' END,
    sent_at = CASE WHEN id = ANY($1::bigint[]) THEN NULL ELSE $3::timestamptz END,
    attempts = CASE WHEN id = ANY($1::bigint[]) THEN attempts + 1 ELSE attempts END,
    smtp_code = CASE WHEN id = ANY($1::bigint[]) THEN NULL ELSE 250 END,
    claimed_at = $3::timestamptz
WHERE id = ANY($1::bigint[] || $2::bigint[]) AND claimed_by = $4
    AND status IN ('{claimed}', '{sending}')
RETURNING id
""").encode()
_PG_MARK_SENT = _with_statuses("""
UPDATE deliveries SET status = '{sent}', sent_at = %(now)s, smtp_code = 250
WHERE id = ANY(%(ids)s) AND claimed_by = %(worker)s AND status = '{sending}'
""")


class _PgLedgerConnection:
    """A raw psycopg connection in autocommit mode for the hot per-message writes.

    Going through the ORM cost ~1 ms of CPU and three round trips (BEGIN,
    UPDATE, COMMIT) per message; this is one prepared statement and one trip.
    Durability is the same: each statement commits before the body goes out.
    """

    def __init__(self, session: DbSession, sync_commit: bool, worker: str,
                 edition_id: int | None = None) -> None:
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
        self.conn_ok = pq.ConnStatus.OK
        # Held while the lane lives; released by PostgreSQL the moment this
        # connection dies, which is how others know the lane is dead.
        self.lock_key = lane_lock_key(worker)
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (LANE_LOCK_SPACE, self.lock_key))
        self.edition_id = edition_id
        if edition_id is not None:
            conn.execute("SELECT pg_advisory_lock_shared(%s, %s)",
                         (EDITION_LANES_SPACE, edition_id))
        self.statement = f"mailer_mark_{uuid.uuid4().hex[:12]}".encode()
        result = self.pgconn.prepare(self.statement, _PG_MARK_SENDING_LIBPQ)
        if result.status != pq.ExecStatus.COMMAND_OK:
            self._raise(f"cannot prepare the ledger statement: {result.error_message!r}")
        self.group_statement = self.statement + b"_group"
        result = self.pgconn.prepare(self.group_statement, _PG_MARK_SENDING_GROUP)
        if result.status != pq.ExecStatus.COMMAND_OK:
            self._raise(f"cannot prepare the ledger statement: {result.error_message!r}")

    def _raise(self, message: str) -> None:
        if self.pgconn.status != self.conn_ok:
            raise LedgerConnectionLost(message)
        raise RuntimeError(message)

    def mark_sending(self, delivery_id: int, sent_ids: list[int], worker: str) -> set[int]:
        if len(sent_ids) <= 1:
            prev = sent_ids[0] if sent_ids else delivery_id
            result = self.pgconn.exec_prepared(self.statement, [
                str(delivery_id).encode(), str(prev).encode(), utcnow().isoformat().encode(),
                worker.encode()])
            if result.status != self.tuples_ok:
                self._raise(f"ledger write failed: {result.error_message!r}")
            return {int(result.get_value(i, 0) or 0) for i in range(result.ntuples)}
        rows = self.conn.execute(_PG_MARK_SENDING_MANY, {
            "id": delivery_id, "now": utcnow(), "worker": worker, "ids": [delivery_id, *sent_ids],
        }).fetchall()
        return {r[0] for r in rows}

    def mark_sending_group(self, delivery_ids: list[int], sent_ids: list[int],
                           worker: str) -> set[int]:
        result = self.pgconn.exec_prepared(self.group_statement, [
            _pg_array(delivery_ids), _pg_array(sent_ids), utcnow().isoformat().encode(),
            worker.encode()])
        if result.status != self.tuples_ok:
            self._raise(f"ledger write failed: {result.error_message!r}")
        return {int(result.get_value(i, 0) or 0) for i in range(result.ntuples)}

    def mark_sent(self, sent_ids: list[int], worker: str) -> None:
        self.conn.execute(_PG_MARK_SENT, {"ids": sent_ids, "now": utcnow(), "worker": worker},
                          prepare=True)

    def discard(self) -> None:
        """Drop a broken connection (its lock went with it)."""
        try:
            self.pooled.invalidate()
        except Exception:  # noqa: S110 - already broken
            pass

    def close(self) -> None:
        try:
            self.conn.execute(b"DEALLOCATE " + self.statement)
            self.conn.execute(b"DEALLOCATE " + self.group_statement)
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)",
                              (LANE_LOCK_SPACE, self.lock_key))
            if self.edition_id is not None:
                self.conn.execute("SELECT pg_advisory_unlock_shared(%s, %s)",
                                  (EDITION_LANES_SPACE, self.edition_id))
            self.conn.execute("RESET synchronous_commit")
            self.conn.autocommit = False
            self.pooled.close()  # back to the pool
        except Exception:
            self.pooled.invalidate()


def _pg_array(ids: list[int]) -> bytes:
    """A PostgreSQL array literal of integers (text format)."""
    return ("{" + ",".join(map(str, ids)) + "}").encode()


class LedgerWriter:
    """Writes outcomes for one lane; the `sent` marks ride on the next `sending` write."""

    def __init__(self, session: DbSession, worker: str, settings: Settings,
                 edition_id: int | None = None) -> None:
        self.session = session
        self.edition_id = edition_id
        self.worker = worker
        self.settings = settings
        self.sent_ids: list[int] = []
        self.report = LaneReport()
        self.on_postgres = on_postgres(session)
        self.pg: _PgLedgerConnection | None = None
        if self.on_postgres:
            self.pg = self._write(self._open_pg)

    def _open_pg(self) -> _PgLedgerConnection:
        return _PgLedgerConnection(self.session, self.settings.ledger_sync_commit, self.worker,
                                   self.edition_id)

    def reconnect(self) -> None:
        """Replace the raw ledger connection (and with it the lane's lock)."""
        self.session.rollback()
        if self.on_postgres:
            if self.pg is not None:
                self.pg.discard()
                self.pg = None
            self.pg = self._open_pg()

    def _write(self, fn: Callable[[], T]) -> T:
        """Run `fn`; when the database connection is lost, reconnect and run it again.

        Every write passed here is a conditional UPDATE (by id and owner) that
        can run twice without harm, and the lane holds no SMTP transaction open
        across it that a few seconds' wait would break.
        """
        for wait in (*RECONNECT_WAITS, None):
            try:
                return fn()
            except Exception as exc:
                if wait is None or not is_disconnect(exc):
                    raise
                log.warning("database connection lost (%s); reconnecting in %.2fs",
                            str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                            wait)
                time.sleep(wait)
                try:
                    self.reconnect()
                except Exception as again:
                    if not is_disconnect(again):
                        raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()
            self.pg = None

    def mark_sending(self, delivery_id: int) -> None:
        returned = self._write(lambda: self._mark_sending(delivery_id))
        self.report.sent += len(self.sent_ids)
        self.sent_ids.clear()
        if delivery_id not in returned:
            raise ClaimLost(delivery_id)

    def _mark_sending(self, delivery_id: int) -> set[int]:
        if self.pg is not None:
            returned = self.pg.mark_sending(delivery_id, self.sent_ids, self.worker)
        else:
            returned = self._orm_mark_sending(delivery_id)
        return returned

    def mark_sending_group(self, delivery_ids: list[int]) -> set[int]:
        """Mark several claimed rows `sending` (and the rows sent since the last
        write `sent`) in one statement, committed before it returns. Returns the
        ids of `delivery_ids` still ours: the others were reclaimed (do not send)."""
        wanted = set(delivery_ids)
        if len(delivery_ids) == 1:
            returned = self._write(lambda: self._mark_sending(delivery_ids[0]))
        else:
            returned = self._write(lambda: self._mark_sending_group(delivery_ids))
        self.report.sent += len(self.sent_ids)
        self.sent_ids.clear()
        return wanted & returned

    def _mark_sending_group(self, delivery_ids: list[int]) -> set[int]:
        if self.pg is not None:
            return self.pg.mark_sending_group(delivery_ids, self.sent_ids, self.worker)
        return self._orm_mark_sending_group(delivery_ids)

    def _orm_mark_sending_group(self, delivery_ids: list[int]) -> set[int]:
        now = utcnow()
        sending = Delivery.id.in_(delivery_ids)
        returned = set(
            self.session.execute(
                update(Delivery)
                .where(
                    Delivery.id.in_([*delivery_ids, *self.sent_ids]),
                    Delivery.claimed_by == self.worker,
                    Delivery.status.in_([DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]),
                )
                .values(
                    status=case((sending, DeliveryStatus.SENDING), else_=DeliveryStatus.SENT),
                    sent_at=case((sending, None), else_=now),
                    attempts=case((sending, Delivery.attempts + 1), else_=Delivery.attempts),
                    smtp_code=case((sending, None), else_=250),
                    claimed_at=now,
                )
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
        self.session.commit()
        return returned

    def _orm_mark_sending(self, delivery_id: int) -> set[int]:
        return self._orm_mark_sending_group([delivery_id])

    def sent(self, delivery_id: int) -> None:
        self.sent_ids.append(delivery_id)

    def flush(self) -> None:
        if not self.sent_ids:
            return
        self._write(self._flush)
        self.report.sent += len(self.sent_ids)
        self.sent_ids.clear()

    def _flush(self) -> None:
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

    def outcome(self, delivery_id: int, reader: ReaderRow, outcome: Outcome,
                first_planned: datetime) -> None:
        """Record a failure of any kind (rare: written at once)."""
        self.flush()
        self._write(lambda: self._outcome(delivery_id, reader, outcome, first_planned))

    def _outcome(self, delivery_id: int, reader: ReaderRow, outcome: Outcome,
                 first_planned: datetime) -> None:
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
        self._write(lambda: self._defer(delivery_id, seconds))
        self.report.deferred += 1

    def _defer(self, delivery_id: int, seconds: float) -> None:
        self.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.claimed_by == self.worker,
                   Delivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.RETRY, claimed_by="",
                    next_attempt_at=utcnow() + timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )
        self.session.commit()

    def back_to_pending(self, delivery_id: int, outcome: Outcome) -> None:
        """The relay failed before this row's body went out: nothing was delivered.
        The row goes back to `pending` for any lane, and the attempt is not spent."""
        self.flush()

        def write() -> None:
            self.session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.claimed_by == self.worker,
                       Delivery.status.in_([DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]))
                .values(status=DeliveryStatus.PENDING, claimed_by="",
                        attempts=(Delivery.attempts - 1) if outcome.counted else Delivery.attempts,
                        error=outcome.message[:1000])
                .execution_options(synchronize_session=False)
            )
            self.session.commit()

        self._write(write)

    def skip(self, delivery_ids: list[int], reason: str) -> None:
        if not delivery_ids:
            return
        self._write(lambda: self._skip(delivery_ids, reason))
        self.report.skipped += len(delivery_ids)

    def _skip(self, delivery_ids: list[int], reason: str) -> None:
        self.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.claimed_by == self.worker,
                   Delivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.SKIPPED, error=reason)
            .execution_options(synchronize_session=False)
        )
        self.session.commit()

    def release(self) -> None:
        """Give back rows we claimed but did not start (pause, shutdown)."""
        self.flush()
        self._write(self._release)

    def _release(self) -> None:
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
    if on_postgres(session):
        # retry_deliveries takes the same lock: the rows it puts back are either
        # counted here, or it finds the edition done and reopens it.
        session.execute(select(Edition.id).where(Edition.id == edition_id).with_for_update())
    # EXISTS, not a count: an A/B edition keeps most of its rows `held` for up to a
    # day, and the sweeper asks on every tick.
    outstanding = session.scalar(select(exists().where(
        Delivery.edition_id == edition_id,
        Delivery.status.in_(DeliveryStatus.OUTSTANDING),
    )))
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


# --- reading and repairing an edition's ledger (editors, API, CLI) -----------

DELIVERIES_PAGE = 100
RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)
# Editions whose failed rows may be sent again: not drafts or compiling ones
# (no ledger yet), never cancelled ones (an editor stopped them on purpose).
RETRY_EDITION_STATES = (EditionStatus.SENDING, EditionStatus.PAUSED, EditionStatus.DONE)
_CHUNK = 500


def _edition_status(session: DbSession, edition_id: int, lock: bool = False) -> str:
    query = select(Edition.status).where(Edition.id == edition_id)
    if lock and on_postgres(session):
        query = query.with_for_update()
    status = session.scalar(query)
    if status is None:
        raise NotFound(f"No edition {edition_id}.")
    return status


def list_deliveries(session: DbSession, edition_id: int, statuses: Sequence[str] = (),
                    page: int = 1, per_page: int = DELIVERIES_PAGE) -> tuple[list[dict[str, Any]], bool]:
    """A page of an edition's ledger rows (optionally of some statuses), in id order,
    with each reader's address (None once erased). Returns (rows, whether more follow)."""
    _edition_status(session, edition_id)
    unknown = sorted(set(statuses) - set(DeliveryStatus.OUTSTANDING) - set(DeliveryStatus.FINAL))
    if unknown:
        raise ValidationError(f"Unknown delivery status {unknown[0]!r}.", {"status": "unknown"})
    if not 1 <= page <= 10_000:
        raise ValidationError("page must be between 1 and 10000.", {"page": "out of range"})
    query = (
        select(Delivery.id, Delivery.reader_id, Reader.email, Delivery.status, Delivery.smtp_code,
               Delivery.error, Delivery.attempts, Delivery.created_at, Delivery.sent_at,
               Delivery.next_attempt_at, Delivery.claimed_at)
        .outerjoin(Reader, Reader.id == Delivery.reader_id)
        .where(Delivery.edition_id == edition_id)
    )
    if statuses:
        query = query.where(Delivery.status.in_(list(statuses)))
    rows = session.execute(
        query.order_by(Delivery.id).offset((page - 1) * per_page).limit(per_page + 1)
    ).all()

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    out = [{
        "id": r.id, "reader_id": r.reader_id, "email": r.email, "status": r.status,
        "smtp_code": r.smtp_code, "error": r.error, "attempts": r.attempts,
        "created_at": r.created_at.isoformat(), "sent_at": when(r.sent_at),
        "next_attempt_at": when(r.next_attempt_at), "claimed_at": when(r.claimed_at),
    } for r in rows[:per_page]]
    return out, len(rows) > per_page


@dataclass(frozen=True)
class RetryResult:
    requeued: int  # back to pending: they will be sent
    skipped: int  # readers who left or are suppressed since: never sent


def retry_deliveries(session: DbSession, edition_id: int, statuses: Sequence[str], *,
                     lanes: int, now: datetime | None = None) -> RetryResult:
    """Put an edition's `failed` and/or `unknown` rows back to be sent; never any
    other row (a `sent` row is never touched). Rows of readers who are no longer
    confirmed and active, were erased or are suppressed become `skipped`. The
    others become `pending` with a fresh attempt count and retry deadline. A
    finished edition goes back to `sending` and its lanes start after the commit;
    a paused one stays paused (resume sends them). Commits."""
    now = now or utcnow()
    wanted = sorted(set(statuses))
    if not wanted or any(s not in RETRYABLE for s in wanted):
        raise ValidationError('statuses must name "failed", "unknown" or both.',
                              {"statuses": "only failed and unknown rows can be sent again"})
    status = _edition_status(session, edition_id, lock=True)
    if status not in RETRY_EDITION_STATES:
        raise Conflict(f"Edition {edition_id} is {status}; only a sending, paused or finished "
                       "edition can send rows again.", {"edition": status})
    chosen = and_(Delivery.edition_id == edition_id, Delivery.status.in_(wanted))

    reader_ok = exists().where(Reader.id == Delivery.reader_id, Reader.status == ReaderStatus.CONFIRMED,
                               Reader.frequency != Frequency.PAUSED)
    skipped = _rowcount(session.execute(
        update(Delivery).where(chosen, not_(reader_ok))
        .values(status=DeliveryStatus.SKIPPED, error="reader unsubscribed or suppressed since")
        .execution_options(synchronize_session=False)))
    # Suppressions are kept as address hashes, so they are matched per address
    # in Python, a chunk of rows at a time (failed rows are few).
    candidates = session.execute(
        select(Delivery.id, Reader.email).join(Reader, Reader.id == Delivery.reader_id).where(chosen)
    ).all()
    suppressed: list[int] = []
    for start in range(0, len(candidates), _CHUNK):
        chunk = {email_hash(email): delivery_id for delivery_id, email in candidates[start:start + _CHUNK]}
        hashes = session.scalars(
            select(Suppression.email_hash).where(Suppression.email_hash.in_(list(chunk))))
        suppressed.extend(chunk[h] for h in hashes)
    for start in range(0, len(suppressed), _CHUNK):
        skipped += _rowcount(session.execute(
            update(Delivery).where(Delivery.id.in_(suppressed[start:start + _CHUNK]))
            .values(status=DeliveryStatus.SKIPPED, error="address suppressed since")
            .execution_options(synchronize_session=False)))

    # `created_at` starts the retry deadline (MAILER_RETRY_DEADLINE_HOURS) again.
    requeued = _rowcount(session.execute(
        update(Delivery).where(chosen)
        .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None, claimed_by="",
                claimed_at=None, smtp_code=None, error="", created_at=now)
        .execution_options(synchronize_session=False)))
    if requeued or skipped:
        # The counts kept for a finished edition are no longer true.
        session.execute(delete(EditionFigures).where(EditionFigures.edition_id == edition_id))
    if requeued and status != EditionStatus.PAUSED:
        session.execute(
            update(Edition).where(Edition.id == edition_id)
            .values(status=EditionStatus.SENDING, finished_at=None, last_activity_at=now)
            .execution_options(synchronize_session=False))
        start_lanes_on_commit(session, edition_id, lanes)
    session.commit()
    return RetryResult(requeued=requeued, skipped=skipped)


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


@dataclass
class DeadLanes:
    unknown: int = 0  # `sending` rows of dead lanes, now `unknown`
    released: int = 0  # `claimed` rows of dead lanes, back to `pending`
    suspects: int = 0  # lanes whose lock is free but that touched their rows a moment ago
    workers: list[str] = field(default_factory=list)


def release_dead_lanes(session: DbSession, edition_id: int, grace_seconds: float,
                       now: datetime | None = None) -> DeadLanes:
    """Find the lanes holding this edition's rows whose advisory lock is free (their
    database session is gone: the worker died) and repair their rows at once:
    `sending` (the message may have arrived) becomes `unknown`, `claimed` goes
    back to `pending`. PostgreSQL only; SQLite waits for the claim lease.

    A lane that lost its connection a moment ago and is reconnecting has a free
    lock too; `grace_seconds` since it last touched its rows tells it apart. If
    it was in fact alive, it finds its rows taken (ClaimLost) and sends nothing.
    """
    report = DeadLanes()
    if not on_postgres(session):
        return report
    now = now or utcnow()
    holders = session.execute(
        select(Delivery.claimed_by, func.max(Delivery.claimed_at))
        .where(Delivery.edition_id == edition_id,
               Delivery.status.in_([DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]))
        .group_by(Delivery.claimed_by)
    ).all()
    for worker, last in holders:
        if not worker:
            continue
        key = lane_lock_key(worker)
        free = session.scalar(select(func.pg_try_advisory_lock(LANE_LOCK_SPACE, key)))
        if not free:
            continue  # the lane's connection is alive
        session.scalar(select(func.pg_advisory_unlock(LANE_LOCK_SPACE, key)))
        if last is not None and (now - last).total_seconds() < grace_seconds:
            report.suspects += 1
            continue
        report.workers.append(worker)
    if report.workers:
        report.unknown = session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition_id, Delivery.claimed_by.in_(report.workers),
                   Delivery.status == DeliveryStatus.SENDING)
            .values(status=DeliveryStatus.UNKNOWN,
                    error="worker lost during the SMTP transaction; the message may have arrived")
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        report.released = session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition_id, Delivery.claimed_by.in_(report.workers),
                   Delivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.PENDING, claimed_by="")
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        log.warning("edition %s: lanes %s are dead; %s rows back to pending, %s unknown",
                    edition_id, report.workers, report.released, report.unknown)
    session.commit()
    return report


def live_lanes(session: DbSession, edition_id: int) -> int | None:
    """How many lanes of this edition are running now (PostgreSQL; None on SQLite)."""
    if not on_postgres(session):
        return None
    return int(session.scalar(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = CAST(:space AS oid) AND objid = CAST(:edition AS oid) AND objsubid = 2"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ), {"space": EDITION_LANES_SPACE, "edition": edition_id}) or 0)


def pause_for(session: DbSession, edition_id: int, reason: str,
              resume_at: datetime | None = None) -> bool:
    """The engine pauses a sending edition and says why (resume clears it). With
    `resume_at` (quiet hours) the sweeper resumes it by itself then."""
    paused = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == EditionStatus.SENDING)
        .values(status=EditionStatus.PAUSED, paused_reason=reason[:2000],
                resume_at=resume_at, last_activity_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    if paused:
        log.warning("edition %s paused itself: %s", edition_id, reason)
    return bool(paused)


def relay_down(session: DbSession, edition_id: int, now: datetime) -> tuple[str, datetime]:
    """Record that no relay answers (keeping the first moment); returns the
    edition's status and since when the relay has been unreachable."""
    session.execute(
        update(Edition)
        .where(Edition.id == edition_id)
        .values(relay_unreachable_since=func.coalesce(Edition.relay_unreachable_since, now),
                last_activity_at=now)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(select(Edition.status, Edition.relay_unreachable_since)
                          .where(Edition.id == edition_id)).one()
    session.commit()
    return row[0], row[1] or now
