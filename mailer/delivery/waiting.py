"""Ledger rows waiting for their hour (reader-local editions): the tick releases them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select, update

from mailer.database import on_postgres
from mailer.models import Delivery, DeliveryStatus
from mailer.models.base import DbSession

# Rows released per statement: a zone of a million readers becomes sendable in
# chunks, each committed, so its lanes start on the first while the rest follow.
RELEASE_CHUNK = 20_000


def release_waiting(session: DbSession, now: datetime, limit: int = RELEASE_CHUNK
                    ) -> Counter[int]:
    """Turn up to `limit` `waiting` rows whose time has come into `pending` rows the
    lanes claim. Returns edition id -> rows released. Does not commit.

    The due rows are found through the partial index on waiting rows only; rows of
    later zones are not read. Concurrent ticks are harmless: each row changes once
    (PostgreSQL: rows another tick holds are skipped)."""
    due = (select(Delivery.id)
           .where(Delivery.status == DeliveryStatus.WAITING, Delivery.next_attempt_at <= now)
           .limit(limit))
    if on_postgres(session):
        due = due.with_for_update(skip_locked=True)
    editions = session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()), Delivery.status == DeliveryStatus.WAITING)
        .values(status=DeliveryStatus.PENDING)
        .returning(Delivery.edition_id)
        .execution_options(synchronize_session=False)
    ).all()
    return Counter(editions)
