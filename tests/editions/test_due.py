"""Schedules in time zones (with Berlin's daylight-saving changes), ticks that
start due digests, approval drafts, live schedule changes and two concurrent
ticks that must create one edition."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer import editions
from mailer.common.errors import ValidationError
from mailer.content import digests
from mailer.content.schedules import next_run, parse_schedule
from mailer.editions import due as scheduler
from mailer.models import Digest, Edition, EditionStatus
from tests.support import factories


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def slots(text: str, start: datetime, count: int) -> list[str]:
    cron, tz = parse_schedule(text)
    out, t = [], start
    for _ in range(count):
        t = next_run(cron, tz, t)
        out.append(t.strftime("%m-%d %H:%M"))
    return out


@pytest.mark.parametrize("text, cron, tz", [
    ("daily 07:00 Europe/Berlin", "0 7 * * *", "Europe/Berlin"),
    ("Mondays 08:00", "0 8 * * 1", "UTC"),
    ("weekdays 06:30 America/New_York", "30 6 * * 1-5", "America/New_York"),
    ("15 6 * * 2", "15 6 * * 2", "UTC"),
    ("0 7 * * * Europe/Berlin", "0 7 * * *", "Europe/Berlin"),
])
def test_schedule_phrases(text, cron, tz):
    assert parse_schedule(text) == (cron, tz)


@pytest.mark.parametrize("text", ["daily 25:00", "someday 07:00", "daily 07:00 Mars/Olympus",
                                  "* * *", "0 7 * * * * *"])
def test_bad_schedules_are_refused(text):
    with pytest.raises(ValidationError):
        parse_schedule(text)


def test_berlin_daylight_saving_changes():
    # 07:00 local stays 07:00 local: 06:00Z in winter, 05:00Z in summer.
    assert slots("daily 07:00 Europe/Berlin", utc(2026, 3, 27, 12), 3) == [
        "03-28 06:00", "03-29 05:00", "03-30 05:00"]
    assert slots("daily 07:00 Europe/Berlin", utc(2026, 10, 23, 12), 3) == [
        "10-24 05:00", "10-25 06:00", "10-26 06:00"]
    # 02:30 does not exist on 29 March: once, just after the gap (03:00 CEST).
    assert slots("daily 02:30 Europe/Berlin", utc(2026, 3, 27, 12), 3) == [
        "03-28 01:30", "03-29 01:00", "03-30 00:30"]
    # 02:30 happens twice on 25 October: still once that day.
    assert slots("daily 02:30 Europe/Berlin", utc(2026, 10, 23, 12), 3) == [
        "10-24 00:30", "10-25 00:30", "10-26 01:30"]


def scheduled_digest(session, schedule="daily 07:00 Europe/Berlin", **fields):
    t = factories.topic(session)
    factories.reader(session, topics=[t])
    d = factories.digest(session, topics=[t], **fields)
    digests.save_digest(session, {"schedule": schedule}, d)
    return d, t


def test_tick_starts_due_digest_once_per_slot_across_dst(session, rt, dispatch):
    d, t = scheduled_digest(session)
    d.next_run_at = utc(2026, 10, 24, 5)
    session.commit()
    started = []
    for day, hour in ((24, 5), (25, 5), (25, 6), (26, 6)):
        now = utc(2026, 10, day, hour, 0, 30)
        factories.article(session, topics=[t], published_at=now - timedelta(minutes=5))
        started += scheduler.run_due(session, rt.settings, now=now)
        started += scheduler.run_due(session, rt.settings, now=now)  # a second tick: nothing
    slots_ = session.scalars(select(Edition.slot).order_by(Edition.id)).all()
    assert slots_ == ["2026-10-24T05:00Z", "2026-10-25T06:00Z", "2026-10-26T06:00Z"]
    assert len(started) == 3
    session.refresh(d)
    assert d.next_run_at == utc(2026, 10, 27, 6)


def test_draft_approval_waits_for_an_editor(session, rt, dispatch):
    d, t = scheduled_digest(session, approval="draft")
    factories.article(session, topics=[t])
    d.next_run_at = utc(2026, 1, 1)
    session.commit()
    [edition_id] = scheduler.run_due(session, rt.settings)
    edition = session.get(Edition, edition_id)
    assert edition.status == EditionStatus.DRAFT
    assert "mailer.prepare_edition" not in dispatch.names()
    assert editions.prepare_edition(session, rt.settings, edition_id) == 0  # a draft is not sent
    editions.approve_edition(session, edition_id)
    assert dispatch.names() == ["mailer.prepare_edition"]
    assert editions.prepare_edition(session, rt.settings, edition_id) == 1
    assert session.get(Edition, edition_id).status == EditionStatus.SENDING


def test_schedule_change_takes_effect_at_the_next_tick(session, rt, dispatch):
    d, t = scheduled_digest(session, schedule="Mondays 08:00")
    factories.article(session, topics=[t])
    assert scheduler.run_due(session, rt.settings) == []  # next Monday, not now
    digests.save_digest(session, {"schedule": "* * * * *"}, d)  # every minute, no restart
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert len(scheduler.run_due(session, rt.settings, now=later)) == 1
    digests.save_digest(session, {"schedule": ""}, d)  # unscheduled
    assert session.get(Digest, d.id).next_run_at is None


def test_two_concurrent_ticks_create_one_edition(session, rt, dispatch):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("concurrent ticks are tested against PostgreSQL (SQLite serialises writers)")
    d, t = scheduled_digest(session)
    factories.article(session, topics=[t])
    engine = session.get_bind()
    for round_ in range(5):
        slot = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1 + round_)
        session.execute(Digest.__table__.update().where(Digest.id == d.id).values(next_run_at=slot))
        session.execute(Edition.__table__.delete())
        session.commit()
        barrier = threading.Barrier(4)
        results: list[list[int]] = []
        errors: list[BaseException] = []

        def tick() -> None:
            with Session(engine) as own:
                barrier.wait()
                try:
                    results.append(scheduler.run_due(own, rt.settings, now=slot + timedelta(seconds=5)))
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

        threads = [threading.Thread(target=tick) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert not errors
        assert sorted(len(r) for r in results) == [0, 0, 0, 1]
        assert session.scalar(select(func.count()).select_from(Edition)) == 1
