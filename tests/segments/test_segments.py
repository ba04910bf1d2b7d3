"""Audiences: rules compiled to SQL, counted, validated, and targeted by a digest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer import editions, segments
from mailer.common import ValidationError
from mailer.content import save_digest
from mailer.models import Delivery, Frequency, ReaderEvent, Segment, Topic, utcnow
from tests.support import factories


@pytest.fixture
def people(session):  # type: ignore[no-untyped-def]
    sport, arts, news = (factories.topic(session, s) for s in ("sport", "arts", "news"))
    now = utcnow()
    a = factories.reader(session, "a@example.org", topics=[sport, arts])
    b = factories.reader(session, "b@example.org", topics=[sport], frequency=Frequency.DAILY)
    c = factories.reader(session, "c@example.org", topics=[arts])
    d = factories.reader(session, "d@example.org")  # no topics
    factories.reader(session, "p@example.org", topics=[sport], status="pending")
    a.consent_source, b.consent_source, c.consent_source = "form:homepage", "form:sidebar", "import"
    a.created_at = now - timedelta(days=400)
    session.add_all([
        ReaderEvent(reader_id=a.id, kind="open", created_at=now - timedelta(days=3)),
        ReaderEvent(reader_id=b.id, kind="open-filtered", created_at=now - timedelta(days=1)),
        ReaderEvent(reader_id=c.id, kind="click", created_at=now - timedelta(days=40)),
    ])
    session.commit()
    assert news.slug == "news"
    return {"a": a.id, "b": b.id, "c": c.id, "d": d.id}


def _count(session, match, *rules):  # type: ignore[no-untyped-def]
    return segments.count_readers(session, segments.checked_definition(
        session, {"match": match, "rules": list(rules)}))


@pytest.mark.parametrize(("match", "rules", "expected"), [
    ("all", [], 4),
    ("all", [{"field": "topics", "op": "any_of", "value": ["sport"]}], 2),
    ("all", [{"field": "topics", "op": "all_of", "value": ["sport", "arts"]}], 1),
    ("all", [{"field": "topics", "op": "none_of", "value": ["sport"]}], 2),
    ("all", [{"field": "topics", "op": "empty"}], 1),
    ("all", [{"field": "frequency", "op": "is", "value": "daily"}], 1),
    ("all", [{"field": "frequency", "op": "is_not", "value": ["daily", "weekly"]}], 3),
    ("all", [{"field": "source", "op": "starts_with", "value": "form:"}], 2),
    ("all", [{"field": "source", "op": "is", "value": "import"}], 1),
    ("all", [{"field": "source", "op": "contains", "value": "%"}], 0),
    ("all", [{"field": "signed_up", "op": "more_than_days_ago", "value": 365}], 1),
    ("all", [{"field": "signed_up", "op": "after", "value": "2000-01-01"}], 4),
    ("all", [{"field": "opened", "op": "within_days", "value": 7}], 1),  # a; b's was a machine
    ("all", [{"field": "opened", "op": "not_within_days", "value": 7}], 3),
    ("all", [{"field": "clicked", "op": "within_days", "value": 30}], 0),
    ("any", [{"field": "clicked", "op": "within_days", "value": 60},
             {"field": "frequency", "op": "is", "value": "daily"}], 2),
    ("all", [{"field": "topics", "op": "any_of", "value": ["sport", "arts"]},
             {"match": "any", "rules": [{"field": "opened", "op": "within_days", "value": 7},
                                        {"field": "source", "op": "is", "value": "import"}]}], 2),
    ("any", [], 4),
])
def test_rules_count_confirmed_readers(session, people, match, rules, expected):
    assert _count(session, match, *rules) == expected


@pytest.mark.parametrize(("definition", "field"), [
    ({"match": "some", "rules": []}, "match"),
    ({"rules": [{"field": "salary", "op": "is", "value": 1}]}, "rules[0].field"),
    ({"rules": [{"field": "topics", "op": "like", "value": ["a"]}]}, "rules[0].op"),
    ({"rules": [{"field": "topics", "op": "any_of", "value": []}]}, "rules[0].value"),
    ({"rules": [{"field": "opened", "op": "within_days", "value": -1}]}, "rules[0].value"),
    ({"rules": [{"field": "signed_up", "op": "before", "value": "yesterday"}]}, "rules[0].value"),
    ({"rules": [{"field": "frequency", "op": "is", "value": "hourly"}]}, "rules[0].value"),
    ({"rules": [{"field": "source", "op": "is", "value": "x", "sql": "1=1"}]}, "rules[0].sql"),
    ({"rules": [{"match": "all", "rules": [{"match": "all", "rules": [{"match": "all",
                                                                        "rules": []}]}]}]},
     "rules[0].rules[0].rules[0]"),
    ({"rules": [{"field": "topics", "op": "any_of", "value": ["nope"]}]}, "rules"),
    ({"rules": "everyone"}, "rules"),
    ({"rules": [{"field": "frequency", "op": "is", "value": "daily"}] * 51}, "rules"),
])
def test_bad_rules_name_the_field_and_save_nothing(session, people, definition, field):
    with pytest.raises(ValidationError) as caught:
        segments.save_segment(session, {"name": "Bad", **definition})
    assert field in caught.value.fields, caught.value.fields
    session.rollback()
    assert session.scalars(select(Segment)).all() == []


def test_a_digest_targets_an_audience(session, dispatch, people, rt):
    segments.save_segment(session, {"name": "Engaged", "rules": [
        {"field": "opened", "op": "within_days", "value": 30}]})
    sport = session.scalar(select(Topic).where(Topic.slug == "sport"))
    factories.article(session, topics=[sport])
    digest = save_digest(session, {"name": "Sport", "topics": ["sport"], "segment": "Engaged"})
    assert digest.segment is not None
    edition = editions.start_edition(session, digest.id)
    editions.prepare_edition(session, rt.settings, edition.id)
    readers = set(session.scalars(select(Delivery.reader_id).where(Delivery.edition_id == edition.id)))
    assert readers == {people["a"]}
    with pytest.raises(ValidationError) as caught:
        save_digest(session, {"name": "Other", "segment": "Missing"})
    assert "segment" in caught.value.fields


def test_api_segments_and_live_count(api, session, people):
    count = api.post("/api/v1/segments/count", json={"match": "all", "rules": [
        {"field": "topics", "op": "any_of", "value": ["sport"]}]})
    assert count.status_code == 200 and count.get_json() == {"count": 2}
    made = api.post("/api/v1/segments", json={"name": "Sport fans", "rules": [
        {"field": "topics", "op": "any_of", "value": ["sport"]}]})
    assert made.status_code == 201 and made.get_json()["count"] == 2
    listed = api.get("/api/v1/segments").get_json()["segments"]
    assert [s["name"] for s in listed] == ["Sport fans"]
    bad = api.post("/api/v1/segments", json={"name": "x", "rules": [{"field": "x"}]})
    assert bad.status_code == 400 and "rules[0].field" in bad.get_json()["fields"]
