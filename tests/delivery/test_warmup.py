"""Warm-up ramp: a day's cap for the sending domain, shared through the database;
the edition pauses when it is used up and resumes by itself the next day."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from mailer import editions
from mailer.delivery import warmup
from mailer.delivery.sweeper import sweep
from mailer.models import Edition, SendQuotaDay, utcnow
from tests.delivery.conftest import lane, planned_edition


def test_daily_cap_grows_by_the_factor_up_to_the_ceiling(rt, settings_override):
    settings_override(warmup=(200, 2.0, 1000), warmup_start=date(2026, 12, 1))
    s = rt.settings
    caps = [warmup.daily_cap(s, date(2026, 12, 1) + timedelta(days=d), date(2020, 1, 1))
            for d in range(5)]
    assert caps == [200, 400, 800, 1000, 1000]
    assert warmup.daily_cap(s, date(2026, 11, 30), date(2020, 1, 1)) == 200


def test_edition_stops_at_the_cap_and_resumes_the_next_day(
        session, rt, sender, dispatch, settings_override):
    settings_override(warmup=(3, 2.0, 100), warmup_start=utcnow().date(), batch_size=2)
    edition = planned_edition(session, rt, readers=8)
    report = lane(session, rt, sender, edition.id)
    assert report.stopped == "paused: warm-up cap"
    assert len(sender.messages) == 3
    p = editions.progress(session, edition.id)
    assert p["status"] == "paused" and p["paused_reason"].startswith("warm-up: the 3 messages")
    used = session.scalar(select(SendQuotaDay.used))
    assert used == 3  # unused reservations were handed back
    tomorrow = warmup.next_day(utcnow())
    assert p["resume_at"] == tomorrow.isoformat()
    assert edition.id in sweep(session, rt.settings, now=tomorrow).resumed
    # Two days on the ramp allow 12 a day: the other 5 go out. (The lane's clock
    # is today's, so the ramp's start moves back instead.)
    settings_override(warmup_start=utcnow().date() - timedelta(days=2))
    lane(session, rt, sender, edition.id)
    session.rollback()
    assert len(sender.messages) == 8
    assert session.get(Edition, edition.id).status == "done"


def test_a_used_up_cap_does_not_hold_back_a_finished_edition(
        session, rt, sender, dispatch, settings_override):
    settings_override(warmup=(4, 2.0, 100), warmup_start=utcnow().date(), batch_size=2)
    edition = planned_edition(session, rt, readers=4)
    lane(session, rt, sender, edition.id)
    session.rollback()
    assert len(sender.messages) == 4
    assert session.get(Edition, edition.id).status == "done"
