"""Keeping a reader who is about to leave: fewer emails, or a break that ends
by itself.

"Pause for 30 days" sets the frequency to paused and remembers what it was; the
beat tick calls `resume_due_readers`, which puts it back once the date passes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from mailer.common.errors import ValidationError
from mailer.models import Frequency, Reader, ReaderEvent, ReaderStatus, utcnow
from mailer.models.base import DbSession

PAUSE_DAYS = 30
KEEP_CHOICES = ("weekly", "pause")


def keep_reader(session: DbSession, reader_id: int, choice: object, *,
                now: datetime | None = None) -> Reader:
    """Apply a "stay, but..." choice of the unsubscribe page: `weekly` or `pause`
    (for PAUSE_DAYS days). Only a confirmed reader can be kept. Commits."""
    now = now or utcnow()
    if choice not in KEEP_CHOICES:
        raise ValidationError("Choose weekly or a pause.", {"choice": "unknown choice"})
    reader = session.get(Reader, reader_id)
    if reader is None or reader.status != ReaderStatus.CONFIRMED:
        raise ValidationError("This subscription is not active any more.", {"choice": "not active"},
                              status=409)
    if choice == "weekly":
        reader.frequency = Frequency.WEEKLY
        reader.paused_until = None
        reader.resume_frequency = ""
        detail: dict[str, str] = {"frequency": Frequency.WEEKLY, "source": "unsubscribe-page"}
        kind = "preferences"
    else:
        if reader.frequency != Frequency.PAUSED:
            reader.resume_frequency = reader.frequency
        reader.frequency = Frequency.PAUSED
        reader.paused_until = now + timedelta(days=PAUSE_DAYS)
        detail = {"until": reader.paused_until.isoformat(), "source": "unsubscribe-page"}
        kind = "paused"
    session.add(ReaderEvent(reader_id=reader.id, kind=kind, detail=detail))
    session.commit()
    return reader


def resume_due_readers(session: DbSession, *, now: datetime | None = None,
                       limit: int = 1000) -> int:
    """Readers whose timed pause is over get their frequency back. Safe to run
    concurrently: each row is resumed by a conditional UPDATE. Commits."""
    now = now or utcnow()
    due = session.execute(
        select(Reader.id, Reader.resume_frequency)
        .where(Reader.paused_until.is_not(None), Reader.paused_until <= now).limit(limit)
    ).all()
    resumed = 0
    for reader_id, previous in due:
        frequency = previous if previous in Frequency.ALL and previous != Frequency.PAUSED \
            else Frequency.IMMEDIATE
        won = session.execute(
            update(Reader)
            .where(Reader.id == reader_id, Reader.paused_until.is_not(None),
                   Reader.paused_until <= now)
            .values(frequency=frequency, paused_until=None, resume_frequency="")
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if won:
            resumed += 1
            session.add(ReaderEvent(reader_id=reader_id, kind="resumed",
                                    detail={"frequency": frequency}))
    session.commit()
    return resumed
