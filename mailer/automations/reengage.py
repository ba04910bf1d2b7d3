"""The inactive-reader policy (MAILER_INACTIVE_MONTHS, off at 0).

A confirmed reader with no human open or click for N months, who received at least
`inactive_min_digests` tracked digests in that time, gets one re-engagement email
with a "keep me subscribed" link. Without an answer (the link, or any human open or
click) within the grace period, their deliveries are paused: not unsubscribed, and
they can resume from the preference centre or the same link.

The email is the one step of a system automation (trigger `reader.inactive`) and
goes through the automation ledger: one row per (step, reader), so it is sent at
most once per reader, ever, retried like a delivery and seen in the reader's
history. The scan is a few set-based statements, run from the beat tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, exists, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from mailer.common.errors import ValidationError
from mailer.config import Settings
from mailer.database import on_postgres
from mailer.jobs import TaskName, wake_on_commit
from mailer.mail.rendering import compile_email
from mailer.models import (
    Automation,
    AutomationDelivery,
    AutomationStep,
    AutomationTrigger,
    Delivery,
    DeliveryStatus,
    EditionLink,
    EngagementState,
    Frequency,
    Reader,
    ReaderEvent,
    ReaderStatus,
    utcnow,
)
from mailer.models.base import DbSession

SYSTEM_NAME = "Re-engagement (inactive readers)"
TEMPLATE = "reengage"
DAYS_PER_MONTH = 30  # "N months" of the setting: N times 30 days
SCAN_LIMIT = 5000  # readers asked or paused per scan; the next tick takes the rest
# Human activity: what a person does. Machine opens (`open-machine`, `open-filtered`)
# and filtered clicks never count.
HUMAN_KINDS = ("open", "click")


@dataclass
class InactiveReport:
    asked: int = 0
    paused: int = 0
    kept: int = 0  # asked, then came back by themselves (opened or clicked)


def reengage_step(session: DbSession, base_url: str, grace_days: int) -> AutomationStep:
    """The system automation's one step, created on first use and recompiled when the
    template changed. Safe when two workers create it at once. Flushes."""
    compiled = compile_email(TEMPLATE, {"base_url": base_url, "grace_days": grace_days})
    automation = session.scalar(
        select(Automation).where(Automation.trigger == AutomationTrigger.READER_INACTIVE))
    if automation is None:
        try:
            with session.begin_nested():
                automation = Automation(name=SYSTEM_NAME, trigger=AutomationTrigger.READER_INACTIVE)
                automation.steps.append(AutomationStep(
                    position=0, delay_minutes=0, subject=compiled.subject, body_text="",
                    body_mjml="", html=compiled.html, text=compiled.text, version=1, active=True))
                session.add(automation)
        except IntegrityError:  # another worker made it first (unique name)
            automation = session.scalar(
                select(Automation).where(Automation.trigger == AutomationTrigger.READER_INACTIVE))
            if automation is None:
                raise
    step = automation.steps[0]
    if (step.subject, step.html, step.text) != (compiled.subject, compiled.html, compiled.text):
        step.subject, step.html, step.text = compiled.subject, compiled.html, compiled.text
        step.version += 1
    session.flush()
    return step


def _human_since(reader_id: Any, since: Any) -> Any:
    return exists().where(ReaderEvent.reader_id == reader_id,
                          ReaderEvent.kind.in_(HUMAN_KINDS), ReaderEvent.created_at >= since)


def _add_events(session: DbSession, reader_ids: list[int], kind: str, now: datetime,
                detail: dict[str, Any]) -> None:
    if reader_ids:
        session.execute(insert(cast(Table, ReaderEvent.__table__)), [
            {"reader_id": r, "kind": kind, "created_at": now, "note": "", "detail": detail}
            for r in reader_ids])


def scan_inactive(session: DbSession, settings: Settings, now: datetime | None = None
                  ) -> InactiveReport:
    """One pass of the policy: readers who came back are kept, unanswered ones past
    the grace period are paused, newly inactive ones are asked. Commits."""
    report = InactiveReport()
    if settings.inactive_months <= 0:
        return report
    now = now or utcnow()
    cutoff = now - timedelta(days=DAYS_PER_MONTH * settings.inactive_months)
    grace = timedelta(days=settings.inactive_grace_days)
    readers = cast(Table, Reader.__table__)
    step = reengage_step(session, settings.base_url, settings.inactive_grace_days)

    # 1. Asked, then opened or clicked as a person: they read us; never asked again.
    kept = session.execute(
        update(readers)
        .where(readers.c.engagement_state == EngagementState.ASKED,
               _human_since(readers.c.id, readers.c.engagement_changed_at))
        .values(engagement_state=EngagementState.KEPT, engagement_changed_at=now)
        .returning(readers.c.id)).scalars().all()
    _add_events(session, list(kept), "reengage-kept", now, {"source": "activity"})
    report.kept = len(kept)

    # 2. The email went out more than the grace period ago and nothing came back.
    # Subqueries read an alias: the UPDATE's own table would be correlated away.
    r = readers.alias("r")
    unanswered = exists().where(
        AutomationDelivery.step_id == step.id, AutomationDelivery.reader_id == r.c.id,
        AutomationDelivery.status == DeliveryStatus.SENT, AutomationDelivery.sent_at <= now - grace)
    due_pause = (select(r.c.id)
                 .where(r.c.engagement_state == EngagementState.ASKED,
                        r.c.status == ReaderStatus.CONFIRMED,
                        r.c.frequency != Frequency.PAUSED, unanswered)
                 .limit(SCAN_LIMIT))
    paused = session.execute(
        update(readers)
        # The state again on the row itself: a concurrent scan that changed it first
        # makes PostgreSQL skip the row (re-checked after the lock), never pause twice.
        .where(readers.c.id.in_(due_pause.scalar_subquery()),
               readers.c.engagement_state == EngagementState.ASKED,
               readers.c.frequency != Frequency.PAUSED)
        .values(resume_frequency=readers.c.frequency, frequency=Frequency.PAUSED,
                paused_until=None, engagement_state=EngagementState.PAUSED,
                engagement_changed_at=now)
        .returning(readers.c.id)).scalars().all()
    _add_events(session, list(paused), "paused-inactive",
                now, {"grace_days": settings.inactive_grace_days})
    report.paused = len(paused)

    # 3. Newly inactive: confirmed before the window, no human open or click in it,
    # and enough tracked digests sent in it that silence means something.
    tracked_received = (
        select(func.count()).select_from(Delivery)
        .where(Delivery.reader_id == r.c.id, Delivery.status == DeliveryStatus.SENT,
               Delivery.sent_at >= cutoff,
               exists().where(EditionLink.edition_id == Delivery.edition_id))
        .correlate(r).scalar_subquery())
    candidates = (select(r.c.id)
                  .where(r.c.status == ReaderStatus.CONFIRMED,
                         r.c.frequency != Frequency.PAUSED,
                         r.c.engagement_state == EngagementState.NONE,
                         or_(r.c.confirmed_at.is_(None), r.c.confirmed_at <= cutoff),
                         r.c.created_at <= cutoff,
                         ~_human_since(r.c.id, cutoff),
                         tracked_received >= settings.inactive_min_digests)
                  .limit(SCAN_LIMIT))
    asked = list(session.execute(
        update(readers)
        .where(readers.c.id.in_(candidates.scalar_subquery()),
               readers.c.engagement_state == EngagementState.NONE)
        .values(engagement_state=EngagementState.ASKED, engagement_changed_at=now)
        .returning(readers.c.id)).scalars().all())
    if asked:
        table = cast(Table, AutomationDelivery.__table__)
        insert_row = pg_insert if on_postgres(session) else sqlite_insert
        # The (step, reader) key: a reader gets this email once, whatever happens later.
        session.execute(insert_row(table).on_conflict_do_nothing(
            index_elements=["step_id", "reader_id"]), [
            {"step_id": step.id, "reader_id": r, "status": DeliveryStatus.PENDING, "due_at": now,
             "attempts": 0, "claimed_by": "", "error": "", "created_at": now} for r in asked])
        _add_events(session, asked, "reengage-asked", now,
                    {"months": settings.inactive_months})
        wake_on_commit(session, TaskName.SEND_AUTOMATIONS)
    report.asked = len(asked)
    session.commit()
    return report


# The scan reads every confirmed reader: from the beat tick (every few seconds) it
# runs at most this often per process; each run is complete and safe to repeat.
SCAN_EVERY_SECONDS = 600.0
_last_scan: dict[str, float] = {}


def scan_inactive_due(session: DbSession, settings: Settings,
                      clock: Callable[[], float] = time.monotonic) -> InactiveReport | None:
    """`scan_inactive` when the policy is on and the last scan of this process is
    SCAN_EVERY_SECONDS old; None when nothing ran."""
    if settings.inactive_months <= 0:
        return None
    last = _last_scan.get("at")
    if last is not None and clock() - last < SCAN_EVERY_SECONDS:
        return None
    _last_scan["at"] = clock()
    return scan_inactive(session, settings)


def keep_subscribed(session: DbSession, reader_id: int, now: datetime | None = None) -> str:
    """The reader's "keep me subscribed": marks them active and ends a pause the
    policy made (never one they chose themselves). Returns "resumed", "kept" or
    raises ValidationError for a reader who is no longer subscribed. Commits."""
    now = now or utcnow()
    reader = session.get(Reader, reader_id)
    if reader is None or reader.status != ReaderStatus.CONFIRMED:
        raise ValidationError("This subscription has ended, so there is nothing to keep. "
                              "You can subscribe again from the signup page.", status=409)
    resumed = reader.engagement_state == EngagementState.PAUSED and \
        reader.frequency == Frequency.PAUSED
    if resumed:
        previous = reader.resume_frequency
        reader.frequency = previous if previous in Frequency.ALL and previous != Frequency.PAUSED \
            else Frequency.IMMEDIATE
        reader.resume_frequency = ""
        reader.paused_until = None
    reader.engagement_state = EngagementState.KEPT
    reader.engagement_changed_at = now
    session.add(ReaderEvent(reader_id=reader.id, kind="reengage-kept",
                            detail={"source": "link", "resumed": resumed}, created_at=now))
    session.commit()
    return "resumed" if resumed else "kept"


def engagement_status(session: DbSession, reader: Reader, settings: Settings) -> dict[str, Any]:
    """What the console's reader page shows about the policy for one reader."""
    sent_at = session.scalar(
        select(AutomationDelivery.sent_at)
        .join(AutomationStep, AutomationStep.id == AutomationDelivery.step_id)
        .join(Automation, and_(Automation.id == AutomationStep.automation_id,
                               Automation.trigger == AutomationTrigger.READER_INACTIVE))
        .where(AutomationDelivery.reader_id == reader.id))
    labels: dict[str, str] = {
        EngagementState.NONE: "active (never asked)",
        EngagementState.ASKED: "inactive: re-engagement email planned or sent, no answer yet",
        EngagementState.PAUSED: "paused for inactivity (can resume from the preference centre)",
        EngagementState.KEPT: "kept: answered the re-engagement email or came back",
    }
    return {"state": reader.engagement_state,
            "label": labels.get(reader.engagement_state, reader.engagement_state),
            "since": reader.engagement_changed_at, "email_sent_at": sent_at,
            "policy_on": settings.inactive_months > 0}
