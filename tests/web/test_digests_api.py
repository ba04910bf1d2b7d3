"""Preview (JSON, HTML at desktop/mobile width, text), test send through a real
SMTP server, draft approval and the feeds API."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer import editions
from mailer.editions import previews
from mailer.mail.senders import SmtpSender, SmtpTarget
from mailer.models import Delivery, Edition, EditionStatus
from tests.support import factories
from tests.support.smtp import SmtpServer


@pytest.fixture
def digest(session):
    t = factories.topic(session, "local")
    factories.reader(session, topics=[t])
    factories.article(session, topics=[t], title="Ferry timetable changes")
    factories.article(session, topics=[t], title="Harbour <wall> repaired")
    return factories.digest(session, "Daily", topics=[t])


def test_preview_json_html_text_and_page(api, digest):
    r = api.get(f"/api/v1/digests/{digest.id}/preview")
    assert r.status_code == 200
    data = r.json
    assert "Ferry timetable changes" in data["html"] and "Hello Alex Reader," in data["html"]
    assert "Harbour &lt;wall&gt; repaired" in data["html"]
    assert "Ferry timetable changes" in data["text"] and "%%" not in data["text"]
    assert data["subject"].startswith("Daily:")
    assert data["truncated"] == 0 and not data["clipped"] and "warning" not in data
    assert data["size_bytes"] == len(data["html"].encode())
    assert data["widths"] == {"desktop": 600, "mobile": 375}

    assert api.get(f"/api/v1/digests/{digest.id}/preview?format=html").mimetype == "text/html"
    text = api.get(f"/api/v1/digests/{digest.id}/preview?format=text")
    assert text.mimetype == "text/plain" and "Ferry" in text.get_data(as_text=True)
    page = api.get(f"/api/v1/digests/{digest.id}/preview?format=page&width=mobile").get_data(as_text=True)
    assert "width:375px" in page and "srcdoc=" in page
    assert api.get(f"/api/v1/digests/{digest.id}/preview?format=page&width=huge").status_code == 400
    assert api.get(f"/api/v1/digests/{digest.id}/preview?format=pdf").status_code == 400
    assert api.get("/api/v1/digests/999/preview").status_code == 404


def test_preview_needs_a_token(client, digest):
    assert client.get(f"/api/v1/digests/{digest.id}/preview").status_code == 401


def test_preview_says_when_cards_were_cut(session, rt, api):
    t = factories.topic(session)
    for n in range(50):
        a = factories.article(session, topics=[t], title=f"Headline {n} " + "word " * 40)
        a.summary = "Summary sentence that goes on. " * 10
        a.image_url = f"https://img.example.org/{n}/" + "long-image-path/" * 40 + "a.jpg"
        a.url = f"https://news.example.org/{n}/" + "a-long-slug-of-words/" * 40
    session.commit()
    d = factories.digest(session, topics=[t], max_articles=50)
    data = api.get(f"/api/v1/digests/{d.id}/preview").json
    assert data["truncated"] > 0 and "left out" in data["warning"]
    assert data["size_bytes"] < data["clip_limit_bytes"]
    page = previews.preview_page(previews.preview_digest(session, rt.settings, d.id), "desktop")
    assert "were left out" in page


def test_preview_falls_back_to_latest_articles_when_nothing_is_new(session, rt, digest, dispatch):
    edition = editions.start_edition(session, digest.name)
    editions.prepare_edition(session, rt.settings, edition.id)
    preview = previews.preview_digest(session, rt.settings, digest.id)
    assert "No new articles" in preview.note and len(preview.article_ids) == 2


def test_test_send_through_real_smtp(session, rt, api, digest):
    with SmtpServer() as smtp:
        rt.sender_override = SmtpSender(SmtpTarget.from_url(smtp.url))
        try:
            r = api.post(f"/api/v1/digests/{digest.id}/test-send",
                         json={"addresses": ["editor@example.org", "Chief@Example.org"]})
        finally:
            rt.sender_override.close()
            rt.sender_override = None
        assert r.status_code == 200, r.json
        assert r.json["results"] == {"editor@example.org": "sent", "Chief@example.org": "sent"}
        [received] = smtp.handler.to("editor@example.org")
        msg = received.message
        assert msg["Subject"].startswith("[Test] Daily:")
        assert msg["X-Mailer-Test"] == "1"
        for header in ("Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"):
            assert msg[header]
        assert "Ferry timetable changes" in msg.get_body(("html",)).get_content()
        assert "Ferry timetable changes" in msg.get_body(("plain",)).get_content()
    # test copies are not deliveries and create no edition
    assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert session.scalar(select(func.count()).select_from(Edition)) == 0


@pytest.mark.parametrize("payload, field", [
    ({"addresses": ["not an address"]}, "addresses"),
    ({"addresses": []}, "addresses"),
    ({"addresses": [f"a{n}@example.org" for n in range(11)]}, "addresses"),
    ({"addresses": ["a@example.org\r\nBcc: x@example.org"]}, "addresses"),
    ({}, "addresses"),
])
def test_test_send_refuses_bad_addresses(api, digest, sender, payload, field):
    r = api.post(f"/api/v1/digests/{digest.id}/test-send", json=payload)
    assert r.status_code == 400 and field in r.json["fields"]
    assert sender.messages == []


def test_draft_preview_and_approval(session, rt, api, digest, dispatch):
    digest.approval = "draft"
    session.commit()
    edition = editions.start_edition(session, digest.name, slot="2026-11-25T07:00Z")
    assert edition.status == EditionStatus.DRAFT
    preview = api.get(f"/api/v1/editions/{edition.id}/preview").json
    assert preview["edition_id"] == edition.id and "Ferry" in preview["html"]
    r = api.post(f"/api/v1/editions/{edition.id}/approve")
    assert r.status_code == 200 and r.json["status"] == "compiling"
    assert api.post(f"/api/v1/editions/{edition.id}/approve").status_code == 409


def test_update_digest_schedule(api, digest):
    r = api.post(f"/api/v1/digests/{digest.id}", json={"schedule": "daily 07:00 Europe/Berlin"})
    assert r.status_code == 200 and r.json["timezone"] == "Europe/Berlin" and r.json["next_run_at"]
    r = api.post(f"/api/v1/digests/{digest.id}", json={"schedule": "daily 31:00"})
    assert r.status_code == 400 and "schedule" in r.json["fields"]


def test_feeds_api(api, digest):
    r = api.post("/api/v1/feeds", json={"url": "https://feeds.example.org/rss",
                                        "category_map": {"Harbour": "local"}})
    assert r.status_code == 201 and r.json["category_map"] == {"harbour": "local"}
    r = api.post("/api/v1/feeds", json={"url": "https://feeds.example.org/rss", "topic": "local"})
    assert r.status_code == 200 and r.json["topic"] == "local"
    assert api.post("/api/v1/feeds", json={"url": "ftp://x"}).status_code == 400
    assert api.post("/api/v1/feeds", json={"url": "https://x.example.org/f",
                                           "category_map": {"a": "unknown"}}).status_code == 400
    assert len(api.get("/api/v1/feeds").json["feeds"]) == 1
    assert api.post("/api/v1/feeds/999/poll").status_code == 404
