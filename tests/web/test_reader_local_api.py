"""Reader-local digests through the API: the schedule is accepted, bad ones are a
4xx naming `schedule`, and the OpenAPI document describes both."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.models import Digest
from tests.support import factories


def test_api_takes_a_reader_local_schedule(api, session):
    factories.topic(session, "world")
    r = api.post("/api/v1/digests", json={"name": "Morning", "topics": ["world"],
                                          "schedule": "daily 07:00 reader-local",
                                          "timezone": "Europe/London"})
    assert r.status_code == 201, r.json
    assert r.json["reader_local"] is True and r.json["timezone"] == "Europe/London"
    # Due when 07:00 first comes anywhere (UTC+14), ten minutes early.
    assert r.json["next_run_at"].endswith("16:50:00+00:00")
    spec = api.get("/api/v1/openapi.json").json
    assert "reader-local" in spec["components"]["schemas"]["DigestIn"]["properties"][
        "schedule"]["description"]
    assert "zones" in spec["components"]["schemas"]["EditionOut"]["properties"]


@pytest.mark.parametrize("schedule", ["*/10 * * * * reader-local", "daily 07:00 Mars reader-local",
                                      "reader-local"])
def test_api_refuses_bad_reader_local_schedules(api, session, schedule):
    r = api.post("/api/v1/digests", json={"name": "Bad", "schedule": schedule})
    assert 400 <= r.status_code < 500 and "schedule" in r.json["fields"]
    assert session.scalar(select(func.count(Digest.id))) == 0
