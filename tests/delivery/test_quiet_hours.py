"""Quiet hours: an edition that reaches them pauses, and resumes by itself after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from mailer import editions
from mailer.common.errors import ValidationError
from mailer.content.schedules import parse_quiet_hours, quiet_until
from mailer.delivery.sweeper import sweep
from mailer.models import Digest, Edition, utcnow
from tests.delivery.conftest import lane, planned_edition


def test_quiet_window_in_the_digest_time_zone_across_midnight_and_dst():
    berlin = "Europe/Berlin"
    # 23:30 in Berlin (winter, UTC+1) is inside 22:00-07:00; it ends 07:00 local = 06:00 UTC.
    assert quiet_until("22:00-07:00", berlin, datetime(2026, 1, 10, 22, 30, tzinfo=UTC)) == \
        datetime(2026, 1, 11, 6, 0, tzinfo=UTC)
    assert quiet_until("22:00-07:00", berlin, datetime(2026, 1, 10, 12, 0, tzinfo=UTC)) is None
    assert quiet_until("12:00-13:00", "UTC", datetime(2026, 1, 10, 12, 59, tzinfo=UTC)) == \
        datetime(2026, 1, 10, 13, 0, tzinfo=UTC)
    # The night the clocks go forward (29 March 2026): 07:00 CEST is 05:00 UTC.
    assert quiet_until("22:00-07:00", berlin, datetime(2026, 3, 28, 23, 0, tzinfo=UTC)) == \
        datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    assert quiet_until("", berlin, datetime(2026, 1, 10, 23, 0, tzinfo=UTC)) is None


@pytest.mark.parametrize("bad", ["22-07", "25:00-07:00", "07:00-07:00", "night"])
def test_bad_quiet_hours_name_the_field(bad: str):
    with pytest.raises(ValidationError) as info:
        parse_quiet_hours(bad)
    assert "quiet_hours" in info.value.fields
    assert parse_quiet_hours(" 9:05 - 17:30 ") == "09:05-17:30"


def test_digest_api_takes_quiet_hours_and_refuses_bad_ones(api, session):
    r = api.post("/api/v1/digests", json={"name": "Night Owl", "quiet_hours": "22:00-07:00"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["quiet_hours"] == "22:00-07:00"
    r = api.post("/api/v1/digests", json={"name": "Bad Owl", "quiet_hours": "late"})
    assert r.status_code == 400 or r.status_code == 422
    assert "quiet_hours" in r.get_json()["fields"]


def test_edition_in_quiet_hours_pauses_then_resumes_by_itself(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=4)
    now = utcnow()
    start = (now - timedelta(minutes=1)).strftime("%H:%M")
    end = (now + timedelta(minutes=30)).strftime("%H:%M")
    session.execute(update(Digest).where(Digest.id == edition.digest_id)
                    .values(quiet_hours=f"{start}-{end}", timezone="UTC"))
    session.commit()
    report = lane(session, rt, sender, edition.id)
    assert report.stopped == "paused: quiet hours" and sender.messages == []
    p = editions.progress(session, edition.id)
    assert p["status"] == "paused" and p["paused_reason"].startswith("quiet hours ")
    assert p["resume_at"]
    assert edition.id not in sweep(session, rt.settings).resumed  # still quiet
    session.execute(update(Digest).where(Digest.id == edition.digest_id).values(quiet_hours=""))
    session.commit()
    dispatch.sent.clear()
    later = datetime.fromisoformat(p["resume_at"]) + timedelta(seconds=1)
    assert edition.id in sweep(session, rt.settings, now=later).resumed
    assert "mailer.send_lane" in dispatch.names()
    lane(session, rt, sender, edition.id)
    session.rollback()
    assert session.get(Edition, edition.id).status == "done"
    assert len(sender.messages) == 4
