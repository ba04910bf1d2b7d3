"""API: /api/v1/automations and /api/v1/webhooks, good and bad input."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.models import Automation, WebhookEndpoint

STEP = {"delay_minutes": 0, "subject": "Welcome", "body_text": "Hello {{ name }}"}


def test_create_and_list_automations(api):
    answer = api.post("/api/v1/automations", json={
        "name": "Welcome", "trigger": "reader.confirmed", "steps": [STEP]})
    assert answer.status_code == 201, answer.get_json()
    data = answer.get_json()
    assert data["name"] == "Welcome" and data["steps"][0]["delay_minutes"] == 0
    listed = api.get("/api/v1/automations").get_json()["automations"]
    assert [a["id"] for a in listed] == [data["id"]]
    again = api.post("/api/v1/automations", json={"name": "Welcome", "steps": [STEP]})
    assert again.status_code == 409 and "name" in again.get_json()["fields"]


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "trigger": "nope", "steps": [STEP]}, "trigger"),
    ({"name": "x", "steps": [{**STEP, "delay_minutes": 600000}]}, "steps[0].delay_minutes"),
    ({"name": "x", "steps": [{**STEP, "delay_minutes": "soon"}]}, "steps[0].delay_minutes"),
    ({"name": "x", "steps": [{**STEP, "body_mjml": "<mjml><mj-bodyx/></mjml>"}]},
     "steps[0].body_mjml"),
    ({"name": "x", "steps": [STEP] * 50}, "steps"),
    ({"name": "x", "steps": "all"}, "steps"),
    ({"name": "x", "steps": [STEP], "topics": ["missing"]}, "topics"),
    ({"steps": [STEP]}, "name"),
    ({"name": "x", "steps": [STEP], "colour": "red"}, "colour"),
    ([1, 2], "body"),
])
def test_bad_automations_are_4xx_naming_the_field(api, session, body, field):
    answer = api.post("/api/v1/automations", json=body)
    assert 400 <= answer.status_code < 500
    assert field in answer.get_json()["fields"], answer.get_json()
    assert session.scalars(select(Automation)).all() == []


def test_api_needs_a_token(client):
    assert client.get("/api/v1/automations").status_code == 401
    assert client.post("/api/v1/webhooks", json={}).status_code == 401


def test_webhooks_create_list_delete(api, client, settings_override):
    settings_override(allow_private_urls=True)
    answer = api.post("/api/v1/webhooks", json={
        "url": "http://127.0.0.1:8080/hook", "events": ["reader.confirmed", "edition.finished"]})
    assert answer.status_code == 201, answer.get_json()
    data = answer.get_json()
    assert set(data) >= {"id", "url", "events", "secret"}
    assert data["secret"].startswith("whsec_")
    listed = api.get("/api/v1/webhooks").get_json()["webhooks"]
    assert [w["id"] for w in listed] == [data["id"]] and "secret" not in listed[0]
    gone = client.delete(f"/api/v1/webhooks/{data['id']}", headers=api.headers)
    assert gone.status_code == 204
    assert client.delete(f"/api/v1/webhooks/{data['id']}", headers=api.headers).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "http://127.0.0.1/hook", "events": ["reader.confirmed"]}, "url"),
    ({"url": "http://192.168.1.5/hook", "events": ["reader.confirmed"]}, "url"),
    ({"url": "file:///etc/passwd", "events": ["reader.confirmed"]}, "url"),
    ({"url": "http://hook.invalid/x", "events": ["reader.confirmed"]}, "url"),
    ({"url": "https://example.org/hook", "events": ["reader.exploded"]}, "events"),
    ({"url": "https://example.org/hook", "events": []}, "events"),
    ({"url": "https://example.org/hook"}, "events"),
])
def test_bad_webhooks_are_4xx_naming_the_field(api, session, body, field):
    answer = api.post("/api/v1/webhooks", json=body)
    assert 400 <= answer.status_code < 500
    assert field in answer.get_json()["fields"], answer.get_json()
    assert session.scalars(select(WebhookEndpoint)).all() == []
