"""Feed intake from a real local HTTP server: RSS 2.0, Atom, conditional GET,
category mapping, sanitising, and feeds that must import nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.content import feeds
from mailer.models import Article, Feed
from tests.support import factories
from tests.support.feedserver import FeedServer

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>Harbour Gazette</title>
  <link>https://gazette.example.org/</link>
  <description>Local news</description>
  <item>
    <title>Ferry timetable changes</title>
    <link>https://gazette.example.org/ferry</link>
    <guid>https://gazette.example.org/ferry</guid>
    <category>Transport</category>
    <author>desk@gazette.example.org (News Desk)</author>
    <pubDate>Tue, 24 Nov 2026 08:00:00 GMT</pubDate>
    <description><![CDATA[Late crossings <b>trimmed</b>.<script>alert(1)</script>]]></description>
    <content:encoded><![CDATA[<p onclick="x()">Full story.</p><script>steal()</script><a href="javascript:x()">bad</a>]]></content:encoded>
  </item>
  <item>
    <title>Council votes on budget</title>
    <link>https://gazette.example.org/budget</link>
    <category>Politics</category>
    <category>Money</category>
    <pubDate>Tue, 24 Nov 2026 09:30:00 GMT</pubDate>
    <description>A tight vote.</description>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Science Weekly</title>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2026-11-24T10:00:00Z</updated>
  <entry>
    <title>Comet seen over the bay</title>
    <link href="https://science.example.org/comet"/>
    <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
    <updated>2026-11-24T10:00:00Z</updated>
    <category term="space"/>
    <summary type="html">&lt;p&gt;Bright &lt;em&gt;tail&lt;/em&gt;.&lt;/p&gt;</summary>
    <author><name>Ada Astronomer</name></author>
  </entry>
</feed>
"""

LATIN1 = """<?xml version="1.0" encoding="ISO-8859-1"?>
<rss version="2.0"><channel><title>Caf\xe9 Zeitung</title>
<item><title>M\xfcnchen: Caf\xe9 er\xf6ffnet</title><link>https://zeitung.example.org/cafe</link>
<pubDate>Tue, 24 Nov 2026 07:00:00 GMT</pubDate></item>
</channel></rss>
""".encode("latin-1")

MISLABELLED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>x</title>
<item><title>M\xfcnchen</title><link>https://zeitung.example.org/m</link></item>
</channel></rss>
""".encode("latin-1")

MALFORMED = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>x</title>
<item><title>Good one</title><link>https://bad.example.org/good</link></item>
<item><title>Broken <link>https://bad.example.org/broken</link></item>
</channel></rss>
"""

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
<rss version="2.0"><channel><title>x</title>
<item><title>&h;</title><link>https://bomb.example.org/1</link></item></channel></rss>
"""

BAD_ITEM = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>x</title>
<item><title>Fine</title><link>https://fine.example.org/1</link></item>
<item><title>No usable link</title><link>javascript:alert(1)</link></item>
</channel></rss>
"""


@pytest.fixture(scope="module")
def server():
    with FeedServer() as s:
        yield s


@pytest.fixture
def topics(session):
    return {slug: factories.topic(session, slug) for slug in ("transport", "politics", "space")}


def articles(session):
    return {a.url: a for a in session.scalars(select(Article))}


def test_rss_import_maps_categories_sanitises_and_uses_conditional_get(session, server, topics):
    url = server.serve("/rss.xml", RSS, etag='"v1"', last_modified="Tue, 24 Nov 2026 10:00:00 GMT")
    feed = feeds.save_feed(session, {"url": url, "category_map": {"transport": "transport",
                                                                   "POLITICS": "politics"}})
    result = feeds.poll_feed(session, feed.id, allow_private=True)
    assert (result.imported, result.created) == (2, 2)
    got = articles(session)
    ferry = got["https://gazette.example.org/ferry"]
    assert [t.slug for t in ferry.topics] == ["transport"]
    assert [t.slug for t in got["https://gazette.example.org/budget"].topics] == ["politics"]
    assert "script" not in ferry.body_html and "onclick" not in ferry.body_html
    assert "javascript" not in ferry.body_html and "Full story." in ferry.body_html
    assert ferry.summary == "Late crossings trimmed."
    assert ferry.published_at.isoformat().startswith("2026-11-24T08:00")
    session.refresh(feed)
    assert (feed.last_status, feed.etag, feed.title) == ("ok", '"v1"', "Harbour Gazette")

    again = feeds.poll_feed(session, feed.id, allow_private=True)
    assert again.not_modified
    _path, headers = server.requests[-1]
    assert headers.get("If-None-Match") == '"v1"'
    assert headers.get("If-Modified-Since") == "Tue, 24 Nov 2026 10:00:00 GMT"

    # a changed document (new ETag) updates by URL: no duplicates
    server.serve("/rss.xml", RSS.replace("Ferry timetable changes", "Ferry timetable changed"),
                 etag='"v2"')
    result = feeds.poll_feed(session, feed.id, allow_private=True)
    assert (result.imported, result.created) == (2, 0)
    assert session.scalar(select(func.count()).select_from(Article)) == 2
    assert articles(session)["https://gazette.example.org/ferry"].title == "Ferry timetable changed"


def test_atom_import_with_default_topic(session, server, topics):
    url = server.serve("/atom.xml", ATOM, content_type="application/atom+xml")
    feed = feeds.save_feed(session, {"url": url, "topic": "space"})
    assert feeds.save_feed(session, {"url": url}).id == feed.id  # idempotent on URL
    result = feeds.poll_feed(session, feed.id, allow_private=True)
    assert result.created == 1
    comet = articles(session)["https://science.example.org/comet"]
    assert comet.author == "Ada Astronomer"
    assert comet.summary == "Bright tail."
    assert [t.slug for t in comet.topics] == ["space"]


def test_iso_8859_1_declared_feed_is_decoded(session, server, topics):
    url = server.serve("/latin1.xml", LATIN1, content_type="application/rss+xml")
    feed = feeds.save_feed(session, {"url": url})
    assert feeds.poll_feed(session, feed.id, allow_private=True).created == 1
    assert articles(session)["https://zeitung.example.org/cafe"].title == "München: Café eröffnet"


@pytest.mark.parametrize("name, body, kw, expected", [
    ("malformed", MALFORMED, {}, "malformed XML"),
    ("mislabelled", MISLABELLED, {}, "declared encoding"),
    ("bomb", BOMB, {}, "malformed XML"),
    ("html", "<html><body><p>Not a feed</p></body></html>", {"content_type": "text/html"},
     "not an RSS or Atom feed"),
    ("oversized", RSS + "<!--" + "x" * 60_000 + "-->", {}, "limit"),
    ("server-error", "oops", {"status": 500}, "HTTP 500"),
    ("bad-item", BAD_ITEM, {}, "item 2"),
    ("timeout", RSS, {"delay": 3.0}, "could not fetch"),
])
def test_unusable_feed_records_error_and_imports_nothing(session, server, topics, name, body, kw,
                                                         expected):
    before = factories.article(session, title="Untouched")
    url = server.serve(f"/bad-{name}.xml", body, **kw)
    feed = feeds.save_feed(session, {"url": url})
    assert feeds.poll_feed(session, feed.id, timeout=1.0, max_bytes=50_000, allow_private=True) is None
    feed = session.get(Feed, feed.id)
    assert feed.last_status == "error"
    assert expected in feed.last_error
    assert feed.next_poll_at is not None
    assert list(articles(session)) == [before.url]


def test_missing_feed_and_refused_schemes(session, server):
    feed = feeds.save_feed(session, {"url": server.url("/nothing-here.xml")})
    assert feeds.poll_feed(session, feed.id, allow_private=True) is None
    assert "HTTP 404" in session.get(Feed, feed.id).last_error
    redirect = server.serve("/redirect.xml", "", status=302, headers={"Location": "ftp://127.0.0.1/feed.xml"})
    feed = feeds.save_feed(session, {"url": redirect})
    assert feeds.poll_feed(session, feed.id, allow_private=True) is None
    assert "only public http:// and https://" in session.get(Feed, feed.id).last_error
    with pytest.raises(feeds.FeedError):
        feeds.fetch("file:///etc/passwd")


def test_save_feed_rejects_unknown_topics(session):
    from mailer.common.errors import ValidationError

    with pytest.raises(ValidationError, match="Unknown topic"):
        feeds.save_feed(session, {"url": "https://x.example.org/feed", "category_map": {"a": "nope"}})
    assert session.scalar(select(func.count()).select_from(Feed)) == 0


def test_due_feeds_are_claimed_once(session, dispatch, server):
    feed = feeds.save_feed(session, {"url": server.url("/rss.xml")})
    assert feeds.queue_due_feeds(session) == [feed.id]
    assert feeds.queue_due_feeds(session) == []  # next poll is in the future now
    assert dispatch.sent == [("mailer.poll_feed", (feed.id,))]


def test_cli_import_feed_from_file_and_url(app, session, server, topics, tmp_path,
                                           settings_override):
    settings_override(allow_private_urls=True)  # the test server is on loopback
    runner = app.test_cli_runner()
    path = tmp_path / "feed.xml"
    path.write_text(RSS, encoding="utf-8")
    result = runner.invoke(args=["import-feed", str(path), "--topic", "transport"])
    assert result.exit_code == 0, result.output
    assert "2 item(s) imported, 2 new" in result.output
    assert {t.slug for a in articles(session).values() for t in a.topics} == {"transport"}

    url = server.serve("/cli-atom.xml", ATOM)
    result = runner.invoke(args=["import-feed", url, "--map", "space=space"])
    assert result.exit_code == 0, result.output
    assert "1 item(s) imported, 1 new" in result.output
    result = runner.invoke(args=["feeds"])
    assert url in result.output and "ok" in result.output

    broken = tmp_path / "broken.xml"
    broken.write_text(MALFORMED, encoding="utf-8")
    result = runner.invoke(args=["import-feed", str(broken)])
    assert result.exit_code != 0 and "malformed XML" in result.output
    assert "https://bad.example.org/good" not in articles(session)
    result = runner.invoke(args=["import-feed", str(path), "--topic", "no-such-topic"])
    assert result.exit_code != 0 and "Unknown topic" in result.output
    result = runner.invoke(args=["import-feed", "/no/such/file.xml"])
    assert result.exit_code != 0 and "neither" in result.output
