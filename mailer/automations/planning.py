"""Planning automation steps for a reader, in the transaction that confirmed them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, exists, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailer.database import on_postgres
from mailer.jobs import TaskName, wake_on_commit
from mailer.models import (
    Automation,
    AutomationDelivery,
    AutomationStep,
    AutomationTrigger,
    DeliveryStatus,
    automation_topics,
    reader_topics,
)
from mailer.models.base import DbSession


def plan_for_reader(session: DbSession, reader_id: int, trigger: str, now: datetime) -> int:
    """One ledger row per active step of every enabled automation on `trigger` whose
    topics (if any) the reader shares, due at `now + delay`. A (step, reader) pair
    that already has a row keeps it: nobody gets a step twice, even after leaving
    and confirming again. Returns the rows written."""
    has_topics = exists().where(automation_topics.c.automation_id == Automation.id)
    shares_topic = exists().where(
        automation_topics.c.automation_id == Automation.id,
        reader_topics.c.topic_id == automation_topics.c.topic_id,
        reader_topics.c.reader_id == reader_id)
    steps = session.execute(
        select(AutomationStep.id, AutomationStep.delay_minutes)
        .join(Automation, Automation.id == AutomationStep.automation_id)
        .where(Automation.enabled.is_(True), Automation.trigger == trigger,
               AutomationStep.active.is_(True), or_(~has_topics, shares_topic))
    ).all()
    if not steps:
        return 0
    table = cast(Table, AutomationDelivery.__table__)
    insert = pg_insert if on_postgres(session) else sqlite_insert
    rows = [{"step_id": step_id, "reader_id": reader_id, "status": DeliveryStatus.PENDING,
             "due_at": now + timedelta(minutes=delay), "attempts": 0, "claimed_by": "",
             "error": "", "created_at": now} for step_id, delay in steps]
    written = session.execute(
        insert(table).on_conflict_do_nothing(index_elements=["step_id", "reader_id"]), rows
    ).rowcount  # type: ignore[attr-defined]
    # A delay-0 step (a welcome email) goes out right after the commit.
    wake_on_commit(session, TaskName.SEND_AUTOMATIONS)
    return max(int(written or 0), 0)


def on_reader_confirmed(session: DbSession, event_type: str, data: dict[str, Any],
                        now: datetime) -> None:
    reader_id = (data.get("reader") or {}).get("id")
    if isinstance(reader_id, int):
        plan_for_reader(session, reader_id, AutomationTrigger.READER_CONFIRMED, now)
