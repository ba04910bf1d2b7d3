"""Ledger rows waiting for their hour (reader-local editions): the tick releases them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from mailer.models import Delivery, DeliveryStatus
from mailer.models.base import DbSession


def release_waiting(session: DbSession, now: datetime) -> dict[int, int]:
    """Turn `waiting` rows whose time has come into `pending` rows the lanes claim.
    Returns edition id -> rows released. Does not commit.

    The due rows are found through the partial index on waiting rows only; rows of
    later zones are not read. Concurrent ticks are harmless: a row changes once."""
    editions = session.scalars(
        select(Delivery.edition_id).distinct()
        .where(Delivery.status == DeliveryStatus.WAITING, Delivery.next_attempt_at <= now)
    ).all()
    released: dict[int, int] = {}
    for edition_id in editions:
        count = session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.WAITING,
                   Delivery.next_attempt_at <= now)
            .values(status=DeliveryStatus.PENDING)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if count:
            released[edition_id] = count
    return released
