"""Feeds from the console: the first fetch decides, pause, delete, mapping text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from mailer.common import ValidationError
from mailer.content import (
    FirstFetchFailed,
    add_feed,
    delete_feed,
    parse_category_map,
    queue_due_feeds,
    set_feed_paused,
)
from mailer.models import Article, Feed, utcnow
from tests.content.test_feeds import RSS
from tests.support import factories
from tests.support.feedserver import FeedServer


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def test_a_feed_that_reads_is_saved_with_its_articles(session, server, dispatch):
    factories.topic(session, "transport", "Transport")
    url = server.serve("/rss", RSS, etag='"v1"')
    feed, result = add_feed(session, {"url": url, "category_map": {"Transport": "transport"}}, allow_private=True)
    assert result is not None and (result.imported, result.created) == (2, 2)
    assert (feed.title, feed.last_status, feed.last_error, feed.etag) == ("Harbour Gazette", "ok", "", '"v1"')
    ferry = session.scalar(select(Article).where(Article.url == "https://gazette.example.org/ferry"))
    assert ferry.feed_id == feed.id and [t.slug for t in ferry.topics] == ["transport"]
    with pytest.raises(ValidationError) as exc:
        add_feed(session, {"url": url}, allow_private=True)
    assert "already" in exc.value.fields["url"]


@pytest.mark.parametrize("page", [dict(body="<html>not a feed</html>", content_type="text/html"),
                                  dict(body="gone", status=500)])
def test_a_feed_that_fails_saves_nothing_unless_the_editor_insists(session, server, page):
    url = server.serve("/bad", **page)
    with pytest.raises(FirstFetchFailed) as exc:
        add_feed(session, {"url": url}, allow_private=True)
    assert exc.value.fields["url"].startswith("the first fetch failed")
    assert session.scalar(select(func.count(Feed.id))) == 0
    feed, result = add_feed(session, {"url": url}, insist=True, allow_private=True)
    assert result is None and feed.last_status == "error" and feed.last_error
    assert session.scalar(select(func.count(Feed.id))) == 1


def test_unknown_topic_in_the_mapping_saves_nothing(session, server):
    url = server.serve("/rss", RSS)
    with pytest.raises(ValidationError) as exc:
        add_feed(session, {"url": url, "category_map": {"Transport": "nope"}}, allow_private=True)
    assert "topics" in exc.value.fields
    assert session.scalar(select(func.count(Feed.id))) == 0
    assert session.scalar(select(func.count(Article.id))) == 0


def test_paused_feeds_are_not_polled_and_resume_at_the_next_tick(session, dispatch):
    feed = Feed(url="https://news.example.org/rss", next_poll_at=utcnow())
    session.add(feed)
    session.commit()
    set_feed_paused(session, feed.id, True)
    assert queue_due_feeds(session) == []
    set_feed_paused(session, feed.id, False)
    assert queue_due_feeds(session) == [feed.id]


def test_deleting_a_feed_keeps_its_articles(session):
    feed = Feed(url="https://news.example.org/rss")
    session.add(feed)
    session.commit()
    article = factories.article(session)
    article.feed_id = feed.id
    session.commit()
    delete_feed(session, feed.id)
    session.expire_all()
    assert session.get(Feed, feed.id) is None
    assert session.get(Article, article.id).feed_id is None
    with pytest.raises(ValidationError):
        delete_feed(session, feed.id)


def test_mapping_text_is_read_line_by_line_with_plain_errors():
    assert parse_category_map("Politics = politics\n\n# comment\n  Sport=sport ") == {
        "politics": "politics", "sport": "sport"}
    with pytest.raises(ValidationError) as exc:
        parse_category_map("Politics = politics\nno equals sign")
    assert "Line 2" in exc.value.message and "line 2" in exc.value.fields["category_map"]
