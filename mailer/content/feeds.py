"""RSS 2.0 / Atom feeds: fetched by our own code, parsed by feedparser, imported
in one transaction.

feedparser is only ever given bytes (never a URL), so it cannot fetch anything:
fetching is ours (common/urlsafety.py: public addresses only, after every
redirect too, one deadline for the whole fetch, a size cap) with conditional
GET (ETag / Last-Modified). A feed that is malformed, too large,
mislabelled in its encoding or otherwise unusable imports nothing and leaves a
clear message in `feeds.last_status` / `last_error`.
"""

from __future__ import annotations

import calendar
import http.client
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax import SAXException

import feedparser
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from mailer.common import urlsafety
from mailer.common.errors import NotFound, ValidationError
from mailer.common.validation import clean_int, clean_slug, clean_url
from mailer.content.articles import upsert_article
from mailer.jobs import TaskName, enqueue_on_commit
from mailer.models import Article, Feed, Topic, utcnow
from mailer.models.base import DbSession

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 5 * 1024 * 1024
MAX_ITEMS = 500
FETCH_TIMEOUT = 15.0
USER_AGENT = "digest-mailer/0.1 (feed reader)"


class FeedError(Exception):
    """Why a feed could not be used; shown to editors as the feed's status."""


class FirstFetchFailed(ValidationError):
    """A new feed could not be read: nothing is saved unless the editor insists."""


@dataclass(frozen=True)
class Fetched:
    body: bytes | None  # None: not modified since the last fetch
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class ImportResult:
    imported: int
    created: int
    not_modified: bool = False


def fetch(url: str, *, etag: str = "", last_modified: str = "",
          timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_FEED_BYTES,
          allow_private: bool = False) -> Fetched:
    """GET the feed, conditionally, from a public address only (see
    common/urlsafety.py); `timeout` bounds the whole fetch, redirects included."""
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        answer = urlsafety.fetch(url, headers=headers, total_timeout=timeout, max_bytes=max_bytes,
                                 allow_private=allow_private)
    except urlsafety.UnsafeURL as exc:
        raise FeedError(str(exc)) from exc
    except urlsafety.FetchError as exc:
        raise FeedError(f"could not fetch the feed: {exc}") from exc
    if answer.status == 304:
        return Fetched(None, etag=etag, last_modified=last_modified)
    if answer.status in urlsafety.REDIRECTS:
        raise FeedError("too many redirects")
    if answer.status != 200:
        reason = http.client.responses.get(answer.status, "")
        raise FeedError(f"HTTP {answer.status} {reason}".strip())
    return Fetched(answer.body, answer.headers.get("content-type", ""),
                   answer.headers.get("etag", ""), answer.headers.get("last-modified", ""))


def _when(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed:
            return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    return None


def _image(entry: Mapping[str, Any]) -> str:
    for thumb in entry.get("media_thumbnail") or entry.get("media_content") or []:
        if isinstance(thumb, Mapping) and str(thumb.get("url", "")).startswith(("http://", "https://")):
            return str(thumb["url"])
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            return str(link.get("href", ""))
    return ""


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    items: list[dict[str, Any]]


def parse_feed(body: bytes, content_type: str = "") -> ParsedFeed:
    """Entries of an RSS 2.0 or Atom document as plain dicts; FeedError if unusable."""
    if len(body) > MAX_FEED_BYTES:
        raise FeedError(f"feed is larger than the {MAX_FEED_BYTES // 1024} KB limit")
    headers = {"content-type": content_type} if content_type else {}
    # A stream, never a string: feedparser would treat a string as a URL to fetch.
    result = feedparser.parse(io.BytesIO(body), response_headers=headers)
    problem = result.get("bozo_exception")
    if isinstance(problem, feedparser.CharacterEncodingOverride):
        raise FeedError(f"the feed's bytes do not match its declared encoding ({problem})")
    if isinstance(problem, SAXException):
        raise FeedError(f"malformed XML: {problem}")
    if not result.get("version"):
        raise FeedError("not an RSS or Atom feed" + (f" ({problem})" if problem else ""))
    if problem and not isinstance(problem, feedparser.NonXMLContentType):
        raise FeedError(f"unusable feed: {problem}")
    if len(result.entries) > MAX_ITEMS:
        raise FeedError(f"feed has {len(result.entries)} items; at most {MAX_ITEMS} are accepted")
    items = []
    for index, entry in enumerate(result.entries, 1):
        content = entry.get("content") or []
        items.append({
            "index": index,
            "url": entry.get("link") or entry.get("id") or "",
            "title": entry.get("title") or "",
            "author": entry.get("author") or "",
            "summary": entry.get("summary") or "",
            "body_html": content[0].get("value", "") if content else "",
            "image_url": _image(entry),
            "published_at": _when(entry),
            "categories": [str(t.get("term") or "") for t in entry.get("tags") or []],
        })
    return ParsedFeed(str(result.feed.get("title") or ""), items)


def map_topics(categories: list[str], category_map: Mapping[str, str], defaults: list[str],
               known: set[str]) -> list[str]:
    """Feed categories -> site topic slugs via the feed's map (case-insensitive)."""
    lowered = {k.strip().lower(): v for k, v in (category_map or {}).items()}
    slugs = [lowered.get(c.strip().lower(), "") for c in categories] + defaults
    return sorted({s for s in slugs if s in known})


def check_topics(session: DbSession, slugs: list[str]) -> None:
    known = set(session.scalars(select(Topic.slug)))
    unknown = sorted(set(slugs) - known)
    if unknown:
        raise ValidationError(f"Unknown topic(s): {', '.join(unknown)}.", {"topics": "unknown"})


def import_items(session: DbSession, items: list[dict[str, Any]], *, feed: Feed | None,
                 topics: list[str] | None = None,
                 category_map: Mapping[str, str] | None = None) -> ImportResult:
    """Upsert every item, without committing; FeedError names the first bad item
    (the caller rolls back: nothing is half imported)."""
    known = set(session.scalars(select(Topic.slug)))
    mapping = category_map if category_map is not None else (feed.category_map if feed else {})
    defaults = list(topics or [])
    if feed is not None and feed.default_topic_slug:
        defaults.append(feed.default_topic_slug)
    created = 0
    now = utcnow()
    for item in items:
        data = {k: v for k, v in item.items() if k not in ("index", "categories")}
        when = data.get("published_at")
        # A date in the future would hide the article from digests until then.
        data["published_at"] = min(when, now).isoformat() if when else now.isoformat()
        data["topics"] = map_topics(item["categories"], mapping, defaults, known)
        try:
            _, was_created = upsert_article(session, data, feed_id=feed.id if feed else None,
                                            commit=False)
        except ValidationError as exc:
            raise FeedError(f"item {item['index']}: {exc.message}") from exc
        created += was_created
    return ImportResult(len(items), created)


def save_feed(session: DbSession, data: Mapping[str, Any], *, commit: bool = True) -> Feed:
    """Add a feed, or update the one with this URL (idempotent). Commits unless told not to."""
    url = clean_url(data.get("url"), "url")
    category_map = data.get("category_map") or {}
    if not isinstance(category_map, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in category_map.items()
    ):
        raise ValidationError("category_map must map category names to topic slugs.",
                              {"category_map": "invalid"})
    default_topic = clean_slug(data["topic"], "topic") if data.get("topic") else ""
    check_topics(session, [*category_map.values(), *([default_topic] if default_topic else [])])
    feed = session.scalar(select(Feed).where(Feed.url == url))
    if feed is None:
        feed = Feed(url=url, next_poll_at=utcnow())
        session.add(feed)
    if "category_map" in data:
        feed.category_map = {k.strip().lower(): v for k, v in category_map.items()}
    if "topic" in data:
        feed.default_topic_slug = default_topic
    if "poll_minutes" in data:
        feed.poll_minutes = clean_int(data.get("poll_minutes"), "poll_minutes", 1, 7 * 24 * 60, 15)
    if commit:
        session.commit()
    else:
        session.flush()
    return feed


def parse_category_map(text: object) -> dict[str, str]:
    """The console's mapping box: one `Feed category = topic-slug` per line."""
    if text is None:
        return {}
    if not isinstance(text, str):
        raise ValidationError("The category mapping must be text.", {"category_map": "must be text"})
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        category, sep, slug = line.partition("=")
        if not sep or not category.strip() or not slug.strip():
            raise ValidationError(
                f"Line {number} of the category mapping should look like “Politics = politics”.",
                {"category_map": f"line {number} should look like “Category = topic-slug”"})
        mapping[category.strip().lower()[:200]] = slug.strip()
    return mapping


def add_feed(session: DbSession, data: Mapping[str, Any], *, insist: bool = False,
             allow_private: bool = False) -> tuple[Feed, ImportResult | None]:
    """Add a feed from the console: its first fetch must work, or nothing is saved
    (ValidationError naming the `url` field with the reason) unless `insist`, which
    saves it with the error shown as its status. On success its items are imported
    with it, in one transaction. Commits."""
    url = clean_url(data.get("url"), "url")
    if session.scalar(select(Feed.id).where(Feed.url == url)) is not None:
        raise ValidationError("This feed is already in the list.",
                              {"url": "this feed is already in the list"})
    problem = ""
    parsed: ParsedFeed | None = None
    fetched: Fetched | None = None
    try:
        fetched = fetch(url, allow_private=allow_private)
        parsed = parse_feed(fetched.body or b"", fetched.content_type)
    except FeedError as exc:
        problem = str(exc)
    if problem and not insist:
        raise FirstFetchFailed(f"The feed could not be read: {problem}.",
                              {"url": f"the first fetch failed: {problem}"})
    feed = save_feed(session, data, commit=False)
    now = utcnow()
    result: ImportResult | None = None
    if parsed is not None and fetched is not None:
        try:
            result = import_items(session, parsed.items, feed=feed)
        except FeedError as exc:
            if not insist:
                session.rollback()
                raise FirstFetchFailed(f"The feed could not be imported: {exc}.",
                                      {"url": f"the first import failed: {exc}"}) from exc
            session.rollback()
            feed = save_feed(session, data, commit=False)
            problem, result = str(exc), None
    feed.last_fetched_at = now
    feed.next_poll_at = now + timedelta(minutes=feed.poll_minutes or 15)
    if result is not None and parsed is not None and fetched is not None:
        feed.title = parsed.title[:500]
        feed.etag, feed.last_modified = fetched.etag[:500], fetched.last_modified[:200]
        feed.last_status, feed.last_error, feed.last_imported = "ok", "", result.imported
    else:
        feed.last_status, feed.last_error, feed.last_imported = "error", problem[:2000], 0
    try:
        session.commit()
    except IntegrityError as exc:  # the same URL added at the same moment by someone else
        session.rollback()
        raise ValidationError("This feed is already in the list.",
                              {"url": "this feed is already in the list"}) from exc
    return feed, result


def set_feed_paused(session: DbSession, feed_id: int, paused: bool) -> Feed:
    """A paused feed is not polled; resuming polls it at the next tick. Commits."""
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise NotFound("No such feed.")
    feed.paused = paused
    if not paused:
        feed.next_poll_at = utcnow()
    session.commit()
    return feed


def delete_feed(session: DbSession, feed_id: int) -> None:
    """Remove a feed; the articles it brought in stay (without their feed). Commits."""
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise NotFound("No such feed.")
    session.execute(update(Article).where(Article.feed_id == feed_id).values(feed_id=None)
                    .execution_options(synchronize_session=False))
    session.delete(feed)
    session.commit()


def poll_feed(session: DbSession, feed_id: int, *, timeout: float = FETCH_TIMEOUT,
              max_bytes: int = MAX_FEED_BYTES, allow_private: bool = False) -> ImportResult | None:
    """Fetch and import one feed now; the outcome is recorded on the feed.
    Returns None when the feed is gone or failed (see `last_error`)."""
    feed = session.get(Feed, feed_id)
    if feed is None:
        return None
    url, etag, modified = feed.url, feed.etag, feed.last_modified
    now = utcnow()
    try:
        fetched = fetch(url, etag=etag, last_modified=modified, timeout=timeout, max_bytes=max_bytes,
                        allow_private=allow_private)
        if fetched.body is None:
            result = ImportResult(0, 0, not_modified=True)
        else:
            parsed = parse_feed(fetched.body, fetched.content_type)
            result = import_items(session, parsed.items, feed=feed)
            if parsed.title:
                feed.title = parsed.title[:500]
            feed.etag = fetched.etag[:500]
            feed.last_modified = fetched.last_modified[:200]
    except FeedError as exc:
        session.rollback()
        _record(session, feed_id, now, status="error", error=str(exc)[:2000])
        log.info("feed %s: %s", url, exc)
        return None
    except Exception:
        # Whatever a hostile feed manages to break, the feed records an error and
        # is polled again later: it never stays stuck, and nobody sees a 500.
        session.rollback()
        log.exception("feed %s: unexpected failure", url)
        _record(session, feed_id, now, status="error", error="the feed could not be read")
        return None
    feed.last_status = "ok"
    feed.last_error = ""
    feed.last_fetched_at = now
    feed.last_imported = result.imported
    feed.next_poll_at = now + timedelta(minutes=feed.poll_minutes or 15)
    session.commit()  # articles and the feed's status in one transaction
    return result


def _record(session: DbSession, feed_id: int, now: datetime, *, status: str, error: str) -> None:
    feed = session.get(Feed, feed_id)
    if feed is None:
        return
    feed.last_status = status
    feed.last_error = error
    feed.last_fetched_at = now
    feed.last_imported = 0
    feed.next_poll_at = now + timedelta(minutes=feed.poll_minutes or 15)
    session.commit()


def queue_due_feeds(session: DbSession, now: datetime | None = None) -> list[int]:
    """Claim due feeds (conditional UPDATE: one tick wins each) and queue their polls."""
    now = now or utcnow()
    due = session.execute(
        select(Feed.id, Feed.next_poll_at, Feed.poll_minutes)
        .where(Feed.next_poll_at.is_not(None), Feed.next_poll_at <= now, Feed.paused.is_(False))
        .limit(200)
    ).all()
    claimed: list[int] = []
    for feed_id, slot, minutes in due:
        won = session.execute(
            update(Feed).where(Feed.id == feed_id, Feed.next_poll_at == slot)
            .values(next_poll_at=now + timedelta(minutes=minutes or 15))
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if won:
            claimed.append(feed_id)
            enqueue_on_commit(session, TaskName.POLL_FEED, feed_id)
    session.commit()
    return claimed


def feed_json(feed: Feed) -> dict[str, Any]:
    return {
        "id": feed.id,
        "url": feed.url,
        "title": feed.title,
        "category_map": feed.category_map,
        "topic": feed.default_topic_slug,
        "poll_minutes": feed.poll_minutes,
        "last_status": feed.last_status,
        "last_error": feed.last_error,
        "last_imported": feed.last_imported,
        "last_fetched_at": feed.last_fetched_at.isoformat() if feed.last_fetched_at else None,
        "next_poll_at": feed.next_poll_at.isoformat() if feed.next_poll_at else None,
    }
