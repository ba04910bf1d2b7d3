"""The console's content workflow through the Flask client: add and edit articles
with a card preview, the feed lifecycle, forms that keep what was typed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from mailer.models import Article, Feed
from tests.content.test_feeds import RSS
from tests.support import factories
from tests.support.feedserver import FeedServer


@pytest.fixture
def server(settings_override) -> Iterator[FeedServer]:  # type: ignore[no-untyped-def]
    settings_override(allow_private_urls=True)  # the test's feed server is on loopback
    with FeedServer() as s:
        yield s


def test_add_article_with_preview_then_save(editor, session):
    factories.topic(session, "local", "Local")
    assert editor.get("/console/articles/new").status_code == 200
    typed = {"url": "https://news.example.org/new", "title": "Harbour reopens", "author": "Kim Lee",
             "summary": "<b>Boats</b> are back.", "image_url": "https://img.example.org/a.jpg",
             "body_html": "<p>Full</p><script>alert(1)</script>", "topics": ["local"]}
    r = editor.post("/console/articles/new", {**typed, "action": "preview"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'class="card-preview"' in html and "By Kim Lee" in html
    assert "<script>alert" not in html and session.scalar(select(func.count(Article.id))) == 0
    r = editor.post("/console/articles/new", {**typed, "action": "save"})
    assert r.status_code == 302
    article = session.scalar(select(Article))
    assert (article.title, article.author, [t.slug for t in article.topics]) == (
        "Harbour reopens", "Kim Lee", ["local"])
    assert "<script>" not in article.body_html and article.summary == "Boats are back."
    again = editor.post("/console/articles/new", {**typed, "action": "save"})
    assert again.status_code == 422 and "already exists" in again.get_data(as_text=True)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("title", "", "Title is required"),
    ("url", "ftp://x", "Address (URL) must be an http(s) URL"),
    ("image_url", "javascript:alert(1)", "Image URL must be an http(s) URL"),
    ("topics", "nope", "Unknown topic"),
    ("title", "x" * 600, "Title is too long"),
])
def test_article_form_keeps_values_and_explains_each_error(editor, session, field, value, words):
    typed = {"url": "https://news.example.org/typed", "title": "Typed title", "author": "Typed author",
             "summary": "Typed summary", "action": "save", field: value}
    r = editor.post("/console/articles/new", typed)
    html = r.get_data(as_text=True)
    assert r.status_code == 422, html
    assert f'id="err-{field}"' in html and words in html
    assert "Typed author" in html and "Typed summary" in html  # nothing typed is lost
    assert "(timezone" not in html and ": unknown" not in html
    assert session.scalar(select(func.count(Article.id))) == 0


def test_digest_form_keeps_values_and_says_what_is_wrong(editor, session):
    r = editor.post("/console/digests/new", {"name": "Evening", "schedule": "daily 18:00",
                                             "timezone": "Mars/Olympus", "max_articles": "7"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert 'id="err-timezone"' in html and "Unknown time zone" in html
    assert "(timezone: unknown)" not in html
    assert 'value="Evening"' in html and 'value="daily 18:00"' in html and 'value="7"' in html


def test_feed_lifecycle(editor, viewer, session, server):
    factories.topic(session, "transport", "Transport")
    bad = server.serve("/broken", "oops", status=500)
    r = editor.post("/console/feeds", {"url": bad, "poll_minutes": "15"})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "HTTP 500" in html and 'name="insist"' in html
    assert f'value="{bad}"' in html and session.scalar(select(func.count(Feed.id))) == 0
    r = editor.post("/console/feeds", {"url": bad, "poll_minutes": "15", "insist": "yes"})
    assert r.status_code == 302
    assert "HTTP 500" in viewer.get("/console/feeds").get_data(as_text=True)

    good = server.serve("/rss", RSS)
    r = editor.post("/console/feeds", {"url": good, "category_map": "Transport = transport",
                                       "poll_minutes": "30"})
    assert r.status_code == 302
    feed = session.scalar(select(Feed).where(Feed.url == good))
    assert feed.last_status == "ok" and feed.category_map == {"transport": "transport"}
    assert session.scalar(select(func.count(Article.id))) == 2
    page = editor.get(f"/console/feeds/{feed.id}").get_data(as_text=True)
    assert "Ferry timetable changes" in page and "transport = transport" in page

    r = editor.post(f"/console/feeds/{feed.id}", {"category_map": "Transport = nope", "topic": "",
                                                  "poll_minutes": "30"})
    assert r.status_code == 422 and "Transport = nope" in r.get_data(as_text=True)
    r = editor.post(f"/console/feeds/{feed.id}", {"category_map": "just words", "poll_minutes": "30"})
    assert r.status_code == 422 and "Line 1" in r.get_data(as_text=True)
    assert editor.post(f"/console/feeds/{feed.id}", {"category_map": "Politics = transport",
                                                     "topic": "transport",
                                                     "poll_minutes": "60"}).status_code == 302
    session.expire_all()
    assert session.get(Feed, feed.id).category_map == {"politics": "transport"}

    assert editor.post(f"/console/feeds/{feed.id}/poll").status_code == 302
    assert editor.post(f"/console/feeds/{feed.id}/pause", {"paused": "yes"}).status_code == 302
    session.expire_all()
    assert session.get(Feed, feed.id).paused
    assert "paused" in editor.get("/console/feeds").get_data(as_text=True)
    assert editor.post(f"/console/feeds/{feed.id}/pause", {"paused": "no"}).status_code == 302
    assert viewer.post(f"/console/feeds/{feed.id}/delete").status_code in (302, 403)
    assert editor.post(f"/console/feeds/{feed.id}/delete").status_code == 302
    session.expire_all()
    assert session.get(Feed, feed.id) is None
    assert session.scalar(select(func.count(Article.id))) == 2  # the articles stay
    assert editor.post(f"/console/feeds/{feed.id}/poll").status_code == 404


@pytest.mark.parametrize("data", [{"url": ""}, {"url": "not a url"}, {"url": "http://x", "poll_minutes": "-5"},
                                  {"url": "http://x", "poll_minutes": "abc"}, {"url": "x" * 5000},
                                  {"url": "http://x", "category_map": "a" * 100 + "\x00= b"}])
def test_feed_form_bad_input_is_a_4xx(editor, session, data):
    r = editor.post("/console/feeds", data)
    assert 400 <= r.status_code < 500
    assert session.scalar(select(func.count(Feed.id))) == 0


def test_viewers_cannot_add_articles_or_feeds(viewer, session):
    assert viewer.post("/console/articles/new", {"url": "https://x.example.org/", "title": "X"}
                       ).status_code in (302, 403)
    assert viewer.post("/console/feeds", {"url": "https://x.example.org/"}).status_code in (302, 403)
    assert session.scalar(select(func.count(Article.id))) == 0


def test_reports_default_to_seven_days_and_say_tracking_off(viewer, session):
    html = viewer.get("/console/reports").get_data(as_text=True)
    assert '<option value="7" selected>' in html
    assert "tracking off" in html and "Readers: net growth" in html and "Why readers left" in html
    assert "Clicks per article" in html
    assert viewer.get("/console/reports?days=13").status_code == 200
