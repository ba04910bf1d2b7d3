"""`POST /api/v1/editions` with an A/B subject test or an audience; the test's
figures in `GET /api/v1/editions/<id>` and on the console's edition page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailer import editions
from mailer.models import Delivery, Edition, ReaderEvent, SubjectTest
from mailer.segments import save_segment
from tests.delivery.conftest import lane
from tests.support import factories


@pytest.fixture
def digest(session):  # type: ignore[no-untyped-def]
    t = factories.topic(session)
    for _ in range(10):
        factories.reader(session, topics=[t])
    factories.reader(session, "weekly@example.org", topics=[t], frequency="weekly")
    factories.article(session, topics=[t])
    return factories.digest(session, "Evening", topics=[t])


def nothing_saved(session) -> bool:
    return (session.scalar(select(func.count()).select_from(Edition)) == 0
            and session.scalar(select(func.count()).select_from(SubjectTest)) == 0)


def test_an_ab_edition_through_the_api(api, session, rt, sender, digest, settings_override):
    settings_override(tracking=True)
    r = api.post("/api/v1/editions", json={
        "digest": "Evening", "subjects": ["Tides turn", "Harbour news"], "sample_percent": 20,
        "wait_minutes": 30, "metric": "clicks"})
    assert r.status_code == 202, r.json
    test = r.json["subject_test"]
    assert [s["subject"] for s in test["subjects"]] == ["Tides turn", "Harbour news"]
    assert (test["sample_percent"], test["wait_minutes"], test["metric"]) == (20, 30, "clicks")
    assert test["winner"] is None and test["decide_at"] is None  # not planned yet

    edition_id = r.json["id"]
    editions.prepare_edition(session, rt.settings, edition_id)
    lane(session, rt, sender, edition_id)
    body = api.get(f"/api/v1/editions/{edition_id}").json
    assert body["held"] == 9 and body["sent"] == 2 and body["status"] == "sending"
    figures = body["subject_test"]["subjects"]
    assert [(f["sample"], f["sent"]) for f in figures] == [(1, 1), (1, 1)]
    reader_of_second = session.scalar(select(Delivery.reader_id).where(
        Delivery.edition_id == edition_id, Delivery.subject_index == 1))
    session.add(ReaderEvent(reader_id=reader_of_second, edition_id=edition_id, kind="click", detail={}))
    session.commit()
    live = api.get(f"/api/v1/editions/{edition_id}").json["subject_test"]["subjects"]
    assert [(f["clicks"], f["click_rate"]) for f in live] == [(0, 0.0), (1, 1.0)]

    decide_at = session.get(SubjectTest, edition_id).decide_at
    editions.decide_subject_tests(session, rt.settings, now=decide_at + timedelta(seconds=1))
    lane(session, rt, sender, edition_id)
    body = api.get(f"/api/v1/editions/{edition_id}").json
    test = body["subject_test"]
    assert test["winner"] == 1 and test["winner_subject"] == "Harbour news"
    assert test["decided_at"] is not None and test["held"] == 0
    assert body["status"] == "done" and body["sent"] == 11 and body["subject"] == "Harbour news"
    assert len({m[1] for m in sender.messages}) == len(sender.messages) == 11
    # The document describes the new fields.
    spec = api.get("/api/v1/openapi.json").json
    assert "subjects" in spec["components"]["schemas"]["EditionIn"]["properties"]
    assert "SubjectTestOut" in spec["components"]["schemas"]


@pytest.mark.parametrize(("extra", "field"), [
    ({"subjects": ["only one"]}, "subjects"),
    ({"subjects": ["a", "b", "c", "d", "e"]}, "subjects"),
    ({"subjects": ["a", ""]}, "subjects"),
    ({"subjects": ["a", "   "]}, "subjects"),
    ({"subjects": ["a", "b"], "sample_percent": 4}, "sample_percent"),
    ({"subjects": ["a", "b"], "sample_percent": 51}, "sample_percent"),
    ({"subjects": ["a", "b"], "wait_minutes": 5}, "wait_minutes"),
    ({"subjects": ["a", "b"], "wait_minutes": 1441}, "wait_minutes"),
    ({"subjects": ["a", "b"], "metric": "replies"}, "metric"),
    ({"subjects": "a,b"}, "subjects"),
    ({"segment_id": 999}, "segment_id"),
    ({"segment_id": "1"}, "segment_id"),
])
def test_bad_input_is_a_4xx_naming_the_field_and_saves_nothing(
        api, session, digest, settings_override, extra, field):
    settings_override(tracking=True)
    r = api.post("/api/v1/editions", json={"digest": "Evening", **extra})
    assert r.status_code == 400, r.json
    assert field in r.json["fields"], r.json
    assert nothing_saved(session)


def test_a_test_without_tracking_is_refused(api, session, digest, settings_override):
    settings_override(tracking=False)
    r = api.post("/api/v1/editions", json={"digest": "Evening", "subjects": ["a", "b"]})
    assert r.status_code == 400
    assert "MAILER_TRACKING" in r.json["fields"]["subjects"]
    assert nothing_saved(session)


def test_a_one_off_edition_for_an_audience(api, session, rt, sender, digest):
    segment = save_segment(session, {"name": "Weekly", "match": "all", "rules": [
        {"field": "frequency", "op": "is", "value": "weekly"}]})
    r = api.post("/api/v1/editions", json={"digest": digest.id, "segment_id": segment.id})
    assert r.status_code == 202, r.json
    assert r.json["segment_id"] == segment.id and "subject_test" not in r.json
    editions.prepare_edition(session, rt.settings, r.json["id"])
    lane(session, rt, sender, r.json["id"])
    assert [m[1] for m in sender.messages] == ["weekly@example.org"]
    # An audience nobody of the digest is in: 409, nothing created.
    empty = save_segment(session, {"name": "Nobody", "match": "all", "rules": [
        {"field": "frequency", "op": "is", "value": "daily"}]})
    r = api.post("/api/v1/editions", json={"digest": digest.id, "segment_id": empty.id})
    assert r.status_code == 409
    assert session.scalar(select(func.count()).select_from(Edition)) == 1
