"""From the signup form to a delivered digest to one-click unsubscribe, through a
real worker process and a real SMTP server, on each database/broker stack."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Delivery, Reader

pytestmark = pytest.mark.e2e


def confirm_link(message) -> str:  # noqa: ANN001
    text = message.get_body(("plain",)).get_content()
    return re.search(r"http://mailer\.test(/confirm/\S+)", text).group(1)


def wait_done(stack, edition_id: int) -> dict:  # noqa: ANN001
    api = stack.api()
    return stack.wait(
        lambda: (e := api.get(f"/api/v1/editions/{edition_id}").json)["status"] == "done" and e,
        90, f"edition {edition_id} to finish")


def test_signup_confirm_digest_unsubscribe(stack):
    api = stack.api()
    assert api.post("/api/v1/topics", json={"slug": "local", "name": "Local"}).status_code == 201
    assert api.post("/api/v1/articles", json={
        "url": "https://news.example.org/ferry", "title": "Ferry timetable changes",
        "summary": "Late crossings trimmed.", "topics": ["local"]}).status_code == 201
    assert api.post("/api/v1/digests", json={"name": "Daily", "topics": ["local"]}).status_code == 201
    for n in range(3):  # readers imported with consent on record
        r = api.post("/api/v1/subscribers", json={"email": f"other{n}@example.org",
                                                  "confirmed": True})
        assert r.status_code == 201
    stack.worker()

    # A reader signs up through the form (CSRF included) ...
    web = stack.app.test_client()
    page = web.get("/subscribe").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = web.post("/subscribe", data={"email": "Reader@Example.org", "name": "Ada Lovelace",
                                     "topics": ["local"], "csrf_token": csrf})
    assert r.status_code == 200

    # ... gets the confirmation email from the worker, and confirms.
    mail = stack.wait(lambda: stack.smtp.handler.to("Reader@example.org"), 60,
                      "the confirmation email")
    assert len(mail) == 1
    assert stack.app.test_client().get(confirm_link(mail[0].message)).status_code == 200

    # An editor starts an edition; the worker sends it to every confirmed reader.
    r = api.post("/api/v1/editions", json={"digest": "Daily"})
    assert r.status_code == 202
    edition_id = r.json["id"]
    final = wait_done(stack, edition_id)
    assert (final["planned"], final["sent"], final["failed"], final["unknown"]) == (4, 4, 0, 0)

    digest = [m for m in stack.smtp.handler.to("reader@example.org")
              if "Daily" in str(m.message["Subject"])]
    assert len(digest) == 1
    msg = digest[0].message
    for header in ("Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert msg[header], header
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    assert "Ferry timetable changes" in msg.get_body(("plain",)).get_content()
    assert "Ada Lovelace" in msg.get_body(("html",)).get_content()

    with stack.app.app_context():
        rows = db.session.scalars(select(Delivery).where(Delivery.edition_id == edition_id)).all()
        assert len(rows) == 4 and {r.status for r in rows} == {"sent"}
        assert len({r.reader_id for r in rows}) == 4

    # One-click unsubscribe: POST to the List-Unsubscribe URL, no cookie, no CSRF.
    url = msg["List-Unsubscribe"].strip("<>").split(">")[0]
    fresh = stack.app.test_client(use_cookies=False)
    r = fresh.post(urlsplit(url).path, data="List-Unsubscribe=One-Click",
                   content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200
    with stack.app.app_context():
        status = db.session.scalar(select(Reader.status).where(Reader.email_key == "reader@example.org"))
        assert status == "unsubscribed"

    # The next edition reaches everyone else, not the reader who left.
    api.post("/api/v1/articles", json={"url": "https://news.example.org/choir",
                                       "title": "Choir wins", "topics": ["local"]})
    second = api.post("/api/v1/editions", json={"digest": "Daily"}).json["id"]
    final = wait_done(stack, second)
    assert final["sent"] == 3
    subjects = [str(m.message["Subject"]) for m in stack.smtp.handler.to("reader@example.org")]
    assert not any("Choir" in s for s in subjects)
    # Nobody got any digest twice.
    ids = [m.message["Message-ID"] for m in stack.smtp.handler.messages
           if "Daily" in str(m.message["Subject"])]
    assert len(ids) == len(set(ids)) == 7
