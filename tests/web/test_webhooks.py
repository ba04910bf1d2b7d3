"""Bounce and complaint webhooks: generic JSON and Amazon SES via SNS."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from sqlalchemy import func, select

from mailer.delivery import bounces
from mailer.models import Reader, ReaderEvent, ReaderStatus, Suppression
from mailer.readers.subscriptions import email_hash
from tests.support import factories

SECRET = "hook-secret-123"
AUTH = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture(autouse=True)
def configured(rt, monkeypatch):
    monkeypatch.setattr(rt, "settings", dataclasses.replace(rt.settings,
                                                            bounce_webhook_secret=SECRET))


def suppressed(session, email: str) -> int:
    return session.scalar(select(func.count()).select_from(Suppression)
                          .where(Suppression.email_hash == email_hash(email)))


def ses_notification(message: dict) -> str:
    return json.dumps({"Type": "Notification", "MessageId": "m-1",
                       "TopicArn": "arn:aws:sns:eu-west-1:123:ses", "Message": json.dumps(message)})


def test_hard_bounce_and_complaint_suppress_and_repeats_are_harmless(client, session):
    bounced = factories.reader(session, "gone@example.org")
    complainer = factories.reader(session, "Angry@Example.org")
    soft = factories.reader(session, "full@example.org")
    body = {"events": [
        {"type": "bounce", "email": "gone@example.org", "bounce_type": "hard", "reason": "5.1.1"},
        {"type": "complaint", "email": "angry@example.org"},
        {"type": "bounce", "email": "full@example.org", "bounce_type": "soft"},
    ]}
    r = client.post("/webhooks/bounces", json=body, headers=AUTH)
    assert r.status_code == 200
    assert r.json == {"status": "ok", "suppressed": 2, "already_suppressed": 0, "soft": 1}
    for _ in range(2):  # the relay retries: nothing changes
        r = client.post("/webhooks/bounces", json=body, headers=AUTH)
        assert r.json["suppressed"] == 0 and r.json["already_suppressed"] == 2
    session.expire_all()
    assert session.get(Reader, bounced.id).status == ReaderStatus.BOUNCED
    assert session.get(Reader, complainer.id).status == ReaderStatus.COMPLAINED
    assert session.get(Reader, soft.id).status == ReaderStatus.CONFIRMED
    assert suppressed(session, "gone@example.org") == suppressed(session, "angry@example.org") == 1
    assert session.scalar(select(func.count()).select_from(ReaderEvent)) == 2


def test_unknown_address_is_suppressed_too(client, session):
    r = client.post("/webhooks/bounces", json={"type": "bounce", "email": "never@example.org"},
                    headers=AUTH)
    assert r.status_code == 200 and r.json["suppressed"] == 1
    assert suppressed(session, "never@example.org") == 1


@pytest.mark.parametrize("headers,query", [
    ({}, ""),
    ({"Authorization": "Bearer wrong"}, ""),
    ({"X-Webhook-Secret": SECRET[:-1]}, ""),
    ({}, "?secret=nope"),
    ({}, f"?secret={SECRET}"),  # never in the query string: it would land in access logs
])
def test_wrong_or_missing_secret_is_refused(client, session, headers, query):
    factories.reader(session, "gone@example.org")
    r = client.post(f"/webhooks/bounces{query}", json={"type": "bounce", "email": "gone@example.org"},
                    headers=headers)
    assert r.status_code == 401 and "error" in r.json
    assert suppressed(session, "gone@example.org") == 0


@pytest.mark.parametrize("headers,query", [
    ({"X-Webhook-Secret": SECRET}, ""),
    ({"Authorization": "Basic " + base64.b64encode(f"sns:{SECRET}".encode()).decode()}, ""),
])
def test_each_way_of_giving_the_secret_works(client, headers, query):
    r = client.post(f"/webhooks/bounces{query}", json={"type": "complaint", "email": "a@example.org"},
                    headers=headers)
    assert r.status_code == 200


def test_without_a_configured_secret_everything_is_refused(client, rt, monkeypatch):
    monkeypatch.setattr(rt, "settings", dataclasses.replace(rt.settings, bounce_webhook_secret=""))
    r = client.post("/webhooks/bounces", json={"type": "bounce", "email": "a@example.org"},
                    headers={"Authorization": "Bearer "})
    assert r.status_code == 403


@pytest.mark.parametrize("raw,field", [
    (b"not json", "body"),
    (b"[]", "body"),
    (b'{"events": []}', "events"),
    (b'{"events": [1]}', "events[0]"),
    (b'{"events": {"a": 1}}', "events"),
    (b'{"type": "bounce", "email": "no-at-sign"}', "events[0].email"),
    (b'{"type": "bounce", "email": "a@example.org\\r\\nBcc: x@y"}', "events[0].email"),
    (b'{"type": "open", "email": "a@example.org"}', "events[0].type"),
    (b'{"type": "bounce", "email": "a@example.org", "bounce_type": "medium"}',
     "events[0].bounce_type"),
    (b"\xff\xfe", "body"),
])
def test_bad_bodies_get_a_4xx_json_answer_naming_the_field(client, session, raw, field):
    r = client.post("/webhooks/bounces", data=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert field in r.json["fields"], r.json
    assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_get_is_a_json_405(client):
    r = client.get("/webhooks/bounces", headers=AUTH)
    assert r.status_code == 405 and r.is_json


def test_ses_permanent_bounce_and_complaint_suppress(client, session):
    reader = factories.reader(session, "ses-gone@example.org")
    bounce = {"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": "ses-gone@example.org",
                               "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
        "mail": {"messageId": "x"}}
    r = client.post("/webhooks/ses", data=ses_notification(bounce),
                    headers={**AUTH, "Content-Type": "text/plain; charset=UTF-8"})
    assert r.status_code == 200 and r.json["suppressed"] == 1
    session.expire_all()
    assert session.get(Reader, reader.id).status == ReaderStatus.BOUNCED

    complaint = {"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "c@example.org"}],
        "complaintFeedbackType": "abuse"}}
    r = client.post("/webhooks/ses", data=ses_notification(complaint), headers=AUTH)
    assert r.json["suppressed"] == 1
    r = client.post("/webhooks/ses", data=ses_notification(complaint), headers=AUTH)
    assert r.json["suppressed"] == 0 and r.json["already_suppressed"] == 1


def test_ses_transient_bounce_and_other_events_suppress_nothing(client, session):
    transient = {"notificationType": "Bounce", "bounce": {
        "bounceType": "Transient", "bouncedRecipients": [{"emailAddress": "t@example.org"}]}}
    assert client.post("/webhooks/ses", data=ses_notification(transient),
                       headers=AUTH).json["soft"] == 1
    delivery = {"eventType": "Delivery", "delivery": {}}
    assert client.post("/webhooks/ses", data=ses_notification(delivery),
                       headers=AUTH).status_code == 200
    assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_sns_subscription_confirmation_fetches_only_an_sns_url(client, monkeypatch):
    fetched: list[str] = []
    monkeypatch.setattr(bounces, "fetch_url", lambda url: fetched.append(url) or 200)
    good = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    body = {"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:eu-west-1:1:ses",
            "SubscribeURL": good, "Token": "abc"}
    r = client.post("/webhooks/ses", data=json.dumps(body), headers=AUTH)
    assert r.status_code == 200 and r.json["status"] == "subscription confirmed"
    assert fetched == [good]
    for evil in ("http://sns.eu-west-1.amazonaws.com/x", "https://evil.example/sns.amazonaws.com",
                 "https://sns.eu-west-1.amazonaws.com.evil.example/", "file:///etc/passwd", 42):
        r = client.post("/webhooks/ses", data=json.dumps({**body, "SubscribeURL": evil}),
                        headers=AUTH)
        assert r.status_code == 400 and "SubscribeURL" in r.json["fields"]
    assert fetched == [good]


def test_sns_confirmation_when_sns_is_unreachable_is_not_a_500(client, monkeypatch):
    def down(url: str) -> int:
        raise OSError("network unreachable")

    monkeypatch.setattr(bounces, "fetch_url", down)
    body = {"Type": "SubscriptionConfirmation",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"}
    r = client.post("/webhooks/ses", data=json.dumps(body), headers=AUTH)
    assert r.status_code == 502 and r.is_json


@pytest.mark.parametrize("body", [
    {"Type": "Weird"},
    {"Type": "Notification", "Message": "not json"},
    {"Type": "Notification", "Message": json.dumps({"notificationType": "Bounce"})},
    {"Type": "Notification", "Message": json.dumps({"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": None}]}})},
    {"Type": "Notification", "Message": json.dumps([1, 2])},
    {"Type": "Notification", "Message": json.dumps({})},
])
def test_bad_ses_bodies_are_4xx_json(client, body):
    r = client.post("/webhooks/ses", data=json.dumps(body), headers=AUTH)
    assert r.status_code == 400 and r.is_json and r.json["error"]
