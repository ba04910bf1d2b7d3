"""A reader-local edition's progress per zone: API (`GET /api/v1/editions/<id>`)
and the console's edition page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from mailer import editions
from mailer.content import digests
from mailer.editions import due as scheduler
from mailer.models import Delivery
from tests.support import factories


def test_edition_progress_per_zone_in_api_and_console(api, editor, session, rt, dispatch):
    t = factories.topic(session)
    for address, zone in (("a@example.org", "Asia/Kathmandu"), ("b@example.org", ""),
                          ("c@example.org", "America/New_York")):
        factories.reader(session, address, topics=[t]).timezone = zone
    d = factories.digest(session, topics=[t], timezone="Europe/London")
    digests.save_digest(session, {"schedule": "daily 07:00 reader-local"}, d)
    slot = datetime(2026, 11, 1, 16, 50, tzinfo=UTC)  # for 2 November, local
    d.next_run_at = slot
    factories.article(session, topics=[t], published_at=slot - timedelta(hours=2))
    session.commit()
    [edition_id] = scheduler.run_due(session, rt.settings, now=slot + timedelta(seconds=5))
    assert editions.prepare_edition(session, rt.settings, edition_id) == 3

    r = api.get(f"/api/v1/editions/{edition_id}")
    assert r.status_code == 200, r.json
    body = r.json
    assert body["status"] == "sending" and body["waiting"] == 3 and body["remaining"] == 3
    assert body["local_send"] == "2026-11-02T07:00"
    assert body["next_zone_at"] == "2026-11-02T01:15:00+00:00"  # Kathmandu, UTC+5:45
    assert [(z["timezone"], z["send_at"], z["waiting"]) for z in body["zones"]] == [
        ("Asia/Kathmandu", "2026-11-02T01:15:00+00:00", 1),
        ("Europe/London", "2026-11-02T07:00:00+00:00", 1),
        ("America/New_York", "2026-11-02T12:00:00+00:00", 1),  # EST since 1 November
    ]
    listed = api.get("/api/v1/editions").json["editions"][0]
    assert listed["next_zone_at"] == body["next_zone_at"] and not listed.get("zones")
    rows = api.get(f"/api/v1/editions/{edition_id}/deliveries?status=waiting").json
    assert len(rows["deliveries"]) == 3

    page = editor.get(f"/console/editions/{edition_id}").get_data(as_text=True)
    assert "By time zone" in page and "Asia/Kathmandu" in page and "next zone at" in page
    assert session.scalar(select(func.count()).select_from(Delivery)) == 3
