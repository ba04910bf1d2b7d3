"""Beat and worker processes do it all: the tick polls a due feed (served over
HTTP), then starts the due digest, and the reader receives the feed's article."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mailer.extensions import db
from mailer.models import Digest, Edition, Feed, utcnow
from tests.support.feedserver import FeedServer

pytestmark = pytest.mark.e2e

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Harbour Gazette</title><link>https://gazette.example.org/</link>
<description>Local news</description>
<item><title>Lighthouse reopens after repairs</title><link>https://gazette.example.org/lighthouse</link>
<category>Harbour</category><pubDate>{date}</pubDate><description>Visitors welcome again.</description></item>
</channel></rss>
"""


def test_beat_polls_feed_and_sends_scheduled_digest(stack):
    api = stack.api()
    assert api.post("/api/v1/topics", json={"slug": "harbour", "name": "Harbour"}).status_code == 201
    assert api.post("/api/v1/subscribers", json={"email": "reader@example.org", "topics": ["harbour"],
                                                 "confirmed": True}).status_code == 201
    published = (utcnow() - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    with FeedServer() as feeds:
        url = feeds.serve("/rss.xml", RSS.format(date=published), etag='"1"')
        r = api.post("/api/v1/feeds", json={"url": url, "category_map": {"harbour": "harbour"}})
        assert r.status_code == 201
        r = api.post("/api/v1/digests", json={"name": "Harbour daily", "topics": ["harbour"],
                                              "schedule": "daily 07:00 Europe/Berlin"})
        assert r.status_code == 201
        digest_id = r.json["id"]
        stack.worker()
        stack.beat()

        def polled():
            with stack.app.app_context():
                db.session.expire_all()
                feed = db.session.scalar(select(Feed))
                return feed.last_status == "ok" and feed
        stack.wait(polled, 90, "the beat tick to poll the feed")

        # An editor moves the schedule: the running beat picks it up from the database.
        with stack.app.app_context():
            db.session.execute(update(Digest).where(Digest.id == digest_id)
                               .values(next_run_at=utcnow() - timedelta(seconds=1)))
            db.session.commit()

        mail = stack.wait(lambda: stack.smtp.handler.to("reader@example.org"), 90,
                          "the scheduled digest")
    msg = mail[0].message
    assert msg["Subject"].startswith("Harbour daily")
    assert "Lighthouse reopens after repairs" in msg.get_body(("plain",)).get_content()
    with stack.app.app_context():
        [edition] = db.session.scalars(select(Edition)).all()
        assert edition.slot.endswith("Z") and edition.created_by == "schedule"
        assert db.session.get(Digest, digest_id).next_run_at > utcnow()
