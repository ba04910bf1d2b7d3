"""Start due digests. Schedules live in the database; beat only ticks.

A digest's slot is claimed with a conditional UPDATE of `next_run_at`
(old value -> next value): of two ticks or two beat processes running at
once, exactly one sees rowcount 1. The edition's unique (digest, slot) is a
second guard.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from mailer.common.errors import ValidationError
from mailer.config import Settings
from mailer.content.schedules import is_reader_local, local_send_for, next_slot
from mailer.editions.control import start_edition
from mailer.models import Digest, ReaderEvent, utcnow
from mailer.models.base import DbSession

log = logging.getLogger(__name__)


def run_due(session: DbSession, settings: Settings, now: datetime | None = None) -> list[int]:
    """Start an edition for every digest whose slot has come. Returns edition ids."""
    now = now or utcnow()
    started: list[int] = []
    due = session.execute(
        select(Digest.id, Digest.next_run_at, Digest.schedule, Digest.timezone).where(
            Digest.active.is_(True), Digest.archived_at.is_(None), Digest.next_run_at.is_not(None),
            Digest.next_run_at <= now
        )
    ).all()
    for digest_id, slot_at, schedule, tz in due:
        assert slot_at is not None  # selected with next_run_at IS NOT NULL
        try:
            following = next_slot(schedule, tz, max(now, slot_at))
        except ValidationError:
            following = None
        claimed = session.execute(
            update(Digest)
            .where(Digest.id == digest_id, Digest.next_run_at == slot_at)
            .values(next_run_at=following)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if not claimed:
            continue  # another tick took this slot
        try:
            edition = start_edition(session, digest_id, created_by="schedule",
                                    slot=slot_at.strftime("%Y-%m-%dT%H:%MZ"), now=now,
                                    local_send=local_send_for(slot_at)
                                    if is_reader_local(schedule) else "")
            started.append(edition.id)
        except IntegrityError:
            session.rollback()
        except ValidationError as exc:
            session.rollback()
            log.info("digest %s slot %s skipped: %s", digest_id, slot_at, exc.message)
            session.add(ReaderEvent(kind="digest-skipped", note=exc.message[:500],
                                    detail={"digest_id": digest_id}))
            session.commit()
    return started
