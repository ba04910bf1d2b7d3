"""A reader confirms and gets the welcome email exactly once, from a real worker
process over real SMTP, while a real HTTP server receives the signed
`reader.confirmed` webhook; on each database/broker stack. And a worker killed
while welcome emails go out: no duplicate, no skip."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from sqlalchemy import insert, select

from mailer.extensions import db
from mailer.models import AutomationDelivery, AutomationStep, Reader, utcnow
from tests.e2e.test_faults import make_stack  # noqa: F401 - the fixture
from tests.support.webhook_server import webhook_receiver

pytestmark = pytest.mark.e2e

WELCOME = {"name": "Welcome", "trigger": "reader.confirmed", "steps": [
    {"delay_minutes": 0, "subject": "Welcome to the Herald",
     "body_text": "{{ greeting }}\n\nThanks for confirming."},
    {"delay_minutes": 600, "subject": "Ten hours in", "body_text": "Still here?"}]}


def _welcomes(stack, address: str) -> list:  # noqa: ANN001
    return [m for m in stack.smtp.handler.to(address)
            if str(m.message["Subject"]) == "Welcome to the Herald"]


def test_confirmed_reader_gets_the_welcome_exactly_once_and_a_signed_webhook(stack):
    api = stack.api()
    with webhook_receiver() as receiver:
        hook = api.post("/api/v1/webhooks", json={"url": receiver.url,
                                                  "events": ["reader.confirmed"]})
        assert hook.status_code == 201, hook.json
        receiver.secret = hook.json["secret"]
        assert api.post("/api/v1/automations", json=WELCOME).status_code == 201
        stack.worker()  # no beat: the wake after the confirmation's commit does it

        web = stack.app.test_client()
        page = web.get("/subscribe").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert web.post("/subscribe", data={"email": "ada@example.org", "name": "Ada",
                                            "csrf_token": csrf}).status_code == 200
        mail = stack.wait(lambda: stack.smtp.handler.to("ada@example.org"), 60,
                          "the confirmation email")
        text = mail[0].message.get_body(("plain",)).get_content()
        link = re.search(r"http://mailer\.test(/confirm/\S+)", text).group(1)
        confirmed_at = time.monotonic()
        assert web.get(link).status_code == 200
        assert web.get(link).status_code == 200  # a second click changes nothing

        welcome = stack.wait(lambda: _welcomes(stack, "ada@example.org"), 60, "the welcome email")
        print(f"welcome arrived {time.monotonic() - confirmed_at:.2f}s after confirming")
        msg = welcome[0].message
        assert "Hello Ada," in msg.get_body(("plain",)).get_content()
        assert msg["List-Unsubscribe"].startswith("<http://mailer.test/unsubscribe/")
        calls = stack.wait(lambda: receiver.received(), 60, "the reader.confirmed webhook")
        assert calls[0]["json"]["type"] == "reader.confirmed" and calls[0]["valid"]

        time.sleep(3)  # anything that would send a second copy has had its chance
        assert len(_welcomes(stack, "ada@example.org")) == 1
        assert len(receiver.received()) == 1
        with stack.app.app_context():
            rows = db.session.execute(
                select(AutomationStep.position, AutomationDelivery.status)
                .join(AutomationStep, AutomationStep.id == AutomationDelivery.step_id)
                .order_by(AutomationStep.position)).all()
            db.session.remove()
        assert [tuple(r) for r in rows] == [(0, "sent"), (1, "pending")]


def test_kill_9_while_welcome_emails_send_no_duplicate_no_skip(make_stack):  # noqa: F811
    stack, _ = make_stack()
    code, body = stack.api_post("/api/v1/automations", {**WELCOME, "steps": WELCOME["steps"][:1]})
    assert code == 201, body
    step_id = body["steps"][0]["id"]
    emails = stack.add_readers(600)
    now = utcnow()
    with stack.app.app_context():
        ids = db.session.scalars(select(Reader.id)).all()
        # As the planner writes them when readers confirm (600 at once here).
        db.session.execute(insert(AutomationDelivery), [
            {"step_id": step_id, "reader_id": rid, "status": "pending", "due_at": now,
             "attempts": 0, "claimed_by": "", "error": "", "created_at": now} for rid in ids])
        db.session.commit()
        db.session.remove()
    stack.smtp.handler.data_delay = 0.01
    worker = stack.worker("worker-a")
    stack.beat()  # its tick wakes the drain: rows are due
    stack.wait(lambda: stack.smtp.handler.count() >= 100, 120, "welcome emails to go out")
    worker.kill()
    at_kill = stack.smtp.handler.count()
    assert at_kill < len(emails), "all were sent before the kill; slow the server more"
    stack.worker("worker-b")

    def settled():  # noqa: ANN202
        with stack.app.app_context():
            statuses = dict(db.session.execute(
                select(Reader.email, AutomationDelivery.status)
                .join(Reader, Reader.id == AutomationDelivery.reader_id)).all())
            db.session.remove()
        done = all(s in ("sent", "unknown") for s in statuses.values())
        return done and statuses

    ledger = stack.wait(settled, 180, "every welcome row to settle")
    received = Counter(m.rcpt.lower() for m in stack.smtp.handler.messages)
    assert sorted(e.lower() for e in ledger) == sorted(emails)
    statuses = Counter(ledger.values())
    print(f"killed after {at_kill} welcome emails; ledger {dict(statuses)}")
    for address, status in ledger.items():
        if status == "sent":
            assert received[address.lower()] == 1, address
        else:
            assert received[address.lower()] <= 1, address
    assert statuses["unknown"] <= 2  # one SMTP connection per drain task (2 worker slots)
    ids = stack.smtp.handler.message_ids()
    assert len(ids) == len(set(ids))


def test_breaking_news_alert_reaches_opted_in_readers_once(stack):
    api = stack.api()
    assert api.post("/api/v1/topics", json={"slug": "local", "name": "Local"}).status_code == 201
    for address in ("alert@example.org", "quiet@example.org"):
        assert api.post("/api/v1/subscribers", json={"email": address, "topics": ["local"],
                                                     "confirmed": True}).status_code == 201
    with stack.app.app_context():
        reader = db.session.scalar(select(Reader).where(Reader.email_key == "alert@example.org"))
        reader.alerts = True
        db.session.commit()
        db.session.remove()
    article = api.post("/api/v1/articles", json={
        "url": "https://news.example.org/storm", "title": "Storm closes the harbour",
        "summary": "All ferries cancelled.", "topics": ["local"]}).json
    stack.worker()
    answer = api.post("/api/v1/alerts", json={"article": article["id"]})
    assert answer.status_code == 202, answer.json
    edition = stack.wait(
        lambda: (e := api.get(f"/api/v1/editions/{answer.json['id']}").json)["status"] == "done"
        and e, 60, "the alert to finish")
    assert (edition["planned"], edition["sent"]) == (1, 1)
    got = stack.smtp.handler.to("alert@example.org")
    assert [str(m.message["Subject"]) for m in got] == ["Breaking: Storm closes the harbour"]
    assert stack.smtp.handler.to("quiet@example.org") == []
    assert api.post("/api/v1/alerts", json={"article": article["id"]}).status_code == 409


def test_a_hanging_webhook_endpoint_does_not_hold_up_a_send(stack):
    api = stack.api()
    with webhook_receiver(["hang"]) as slow, webhook_receiver([200]) as fast:
        for receiver in (slow, fast):
            hook = api.post("/api/v1/webhooks", json={
                "url": receiver.url, "events": ["reader.subscribed", "edition.started"]})
            assert hook.status_code == 201
            receiver.secret = hook.json["secret"]
        assert api.post("/api/v1/topics", json={"slug": "local", "name": "Local"}).status_code == 201
        for n in range(5):
            assert api.post("/api/v1/subscribers", json={
                "email": f"w{n}@example.org", "confirmed": True}).status_code == 201
        api.post("/api/v1/articles", json={"url": "https://news.example.org/x", "title": "X",
                                           "topics": ["local"]})
        api.post("/api/v1/digests", json={"name": "Daily"})
        stack.worker()
        started = time.monotonic()
        edition_id = api.post("/api/v1/editions", json={"digest": "Daily"}).json["id"]
        final = stack.wait(
            lambda: (e := api.get(f"/api/v1/editions/{edition_id}").json)["status"] == "done"
            and e, 60, "the edition to finish")
        took = time.monotonic() - started
        assert final["sent"] == 5
        calls = stack.wait(lambda: len(fast.received()) >= 6 and fast.received(), 30,
                           "the healthy endpoint's calls")
        assert all(c["valid"] for c in calls)
        print(f"edition done in {took:.1f}s with a hanging endpoint; healthy endpoint got "
              f"{len(calls)} calls, the hanging one {len(slow.received())}")
        assert len(slow.received()) <= 2  # stopped at its first failure each round
