"""Readers' time zone and attributes: set through the API, checked, and usable in audiences."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.common import ValidationError
from mailer.models import Reader
from mailer.readers import subscribe
from mailer.segments import checked_definition, count_readers


def test_api_takes_timezone_and_attributes(api, session):
    r = api.post("/api/v1/subscribers", json={
        "email": "ada@example.org", "timezone": "Europe/Berlin", "confirmed": True,
        "attributes": {"plan": "pro", "seats": 3, "trial": False, "score": 1.5}})
    assert r.status_code == 201, r.get_json()
    reader = session.scalar(select(Reader).where(Reader.email_key == "ada@example.org"))
    assert reader.timezone == "Europe/Berlin"
    assert reader.attributes == {"plan": "pro", "seats": 3, "trial": False, "score": 1.5}


@pytest.mark.parametrize(("body", "field"), [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": 5}, "timezone"),
    ({"attributes": []}, "attributes"),
    ({"attributes": {"plan": {"nested": 1}}}, "attributes"),
    ({"attributes": {"plan": None}}, "attributes"),
    ({"attributes": {"bad name!": "x"}}, "attributes.bad name!"),
    ({"attributes": {"note": "x" * 501}}, "attributes.note"),
])
def test_bad_timezone_or_attributes_are_4xx_naming_the_field(api, session, body, field):
    r = api.post("/api/v1/subscribers", json={"email": "bob@example.org", **body})
    assert 400 <= r.status_code < 500
    fields = r.get_json()["fields"]
    assert field in fields or field.split(".")[0] in fields
    assert session.scalar(select(Reader).where(Reader.email_key == "bob@example.org")) is None


def test_a_form_post_does_not_change_a_known_readers_attributes(session):
    subscribe(session, email="cy@example.org", confirmed=True, attributes={"plan": "pro"},
              source="api")
    subscribe(session, email="cy@example.org", attributes={"plan": "free"}, from_form=True)
    assert session.scalar(select(Reader.attributes).where(Reader.email_key == "cy@example.org")) \
        == {"plan": "pro"}
    subscribe(session, email="cy@example.org", confirmed=True, attributes={"plan": "team"},
              source="api")
    assert session.scalar(select(Reader.attributes).where(Reader.email_key == "cy@example.org")) \
        == {"plan": "team"}


def test_service_refuses_a_bad_timezone_and_writes_nothing(session):
    with pytest.raises(ValidationError):
        subscribe(session, email="dee@example.org", timezone="Nowhere/Land")
    assert session.scalar(select(Reader).where(Reader.email_key == "dee@example.org")) is None


def test_audiences_select_on_timezone_and_attributes(session):
    subscribe(session, email="a@example.org", confirmed=True, timezone="Europe/Berlin",
              attributes={"plan": "pro", "trial": True, "seats": 3})
    subscribe(session, email="b@example.org", confirmed=True, timezone="America/New_York",
              attributes={"plan": "free", "trial": False, "seats": 1})
    subscribe(session, email="c@example.org", confirmed=True)

    def count(*rules: dict) -> int:
        return count_readers(session, checked_definition(session, {"match": "all", "rules": list(rules)}))

    assert count({"field": "timezone", "op": "is", "value": ["Europe/Berlin"]}) == 1
    assert count({"field": "timezone", "op": "is_not", "value": ["Europe/Berlin"]}) == 2
    assert count({"field": "attribute", "op": "equals", "value": {"name": "plan", "value": "pro"}}) == 1
    assert count({"field": "attribute", "op": "equals", "value": {"name": "trial", "value": True}}) == 1
    assert count({"field": "attribute", "op": "equals", "value": {"name": "trial", "value": False}}) == 1
    assert count({"field": "attribute", "op": "equals", "value": {"name": "seats", "value": 3}}) == 1
    assert count({"field": "attribute", "op": "exists", "value": {"name": "plan"}}) == 2
    assert count({"field": "attribute", "op": "not_equals", "value": {"name": "plan", "value": "pro"}}) == 2
    with pytest.raises(ValidationError) as info:
        checked_definition(session, {"rules": [{"field": "attribute", "op": "equals", "value": "plan"}]})
    assert "rules[0].value" in info.value.fields
