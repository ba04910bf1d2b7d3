"""Articles and topics coming in from the API, CLI, admin and feeds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nh3
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailer.common.errors import Conflict, ValidationError
from mailer.common.validation import (
    clean_datetime,
    clean_long_text,
    clean_slug,
    clean_slugs,
    clean_text,
    clean_url,
)
from mailer.models import Article, Topic, utcnow
from mailer.models.base import DbSession
from mailer.readers.subscriptions import topics_by_slug

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "cite", "code", "em", "figcaption", "figure",
    "h2", "h3", "h4", "hr", "i", "img", "li", "ol", "p", "pre", "q", "s", "small", "strong",
    "sub", "sup", "u", "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}}


def sanitize_html(raw: str) -> str:
    """Article HTML keeps its structure and loses scripts, styles and handlers."""
    return nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


def plain_text(raw: str) -> str:
    """Text from HTML (summaries may arrive with markup)."""
    return " ".join(nh3.clean(raw, tags=set()).split())


def upsert_article(
    session: DbSession, data: Mapping[str, Any], *, feed_id: int | None = None, commit: bool = True
) -> tuple[Article, bool]:
    """Create or update the article with this URL. Returns (article, created)."""
    if not isinstance(data, Mapping):
        raise ValidationError("The body must be a JSON object.")
    url = clean_url(data.get("url"), "url")
    title = clean_text(data.get("title"), "title", 500, required=True)
    author = clean_text(data.get("author"), "author", 200)
    summary = plain_text(clean_long_text(data.get("summary"), "summary", 20_000))[:5000]
    body_html = sanitize_html(clean_long_text(data.get("body_html"), "body_html", 1_000_000))
    image_url = clean_url(data.get("image_url"), "image_url", required=False)
    published_at = clean_datetime(data.get("published_at"), "published_at") or utcnow()
    topics = topics_by_slug(session, clean_slugs(data.get("topics")))

    article = session.scalar(select(Article).where(Article.url == url))
    created = article is None
    if article is None:
        article = Article(url=url)
        session.add(article)
    article.title = title
    article.author = author
    article.summary = summary
    article.body_html = body_html
    article.image_url = image_url
    article.published_at = published_at
    if feed_id is not None:
        article.feed_id = feed_id
    if "topics" in data or created:
        article.topics = topics
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("Another article with this URL was saved at the same moment; retry.") from exc
    if commit:
        session.commit()
    return article, created


@dataclass(frozen=True)
class ArticleCard:
    """What a digest card of this article shows, for the console's preview."""

    title: str
    author: str
    summary: str
    image_url: str
    url: str
    body_html: str
    topics: list[str]


def article_card(session: DbSession, data: Mapping[str, Any]) -> ArticleCard:
    """The card an article would get, checked and sanitised as on save, nothing stored."""
    topics = topics_by_slug(session, clean_slugs(data.get("topics")))
    return ArticleCard(
        title=clean_text(data.get("title"), "title", 500, required=True),
        author=clean_text(data.get("author"), "author", 200),
        summary=plain_text(clean_long_text(data.get("summary"), "summary", 20_000))[:5000],
        image_url=clean_url(data.get("image_url"), "image_url", required=False),
        url=clean_url(data.get("url"), "url", required=False),
        body_html=sanitize_html(clean_long_text(data.get("body_html"), "body_html", 1_000_000)),
        topics=[t.name for t in topics],
    )


def create_article(session: DbSession, data: Mapping[str, Any]) -> Article:
    """A new article from the console; an address already used is an error naming
    the field (the API's upsert would silently update it). Commits."""
    url = clean_url(data.get("url"), "url")
    if session.scalar(select(Article.id).where(Article.url == url)) is not None:
        raise ValidationError("An article with this address already exists.",
                              {"url": "an article with this address already exists"})
    article, _ = upsert_article(session, {**data, "image_url": data.get("image_url") or None})
    return article


def create_topic(session: DbSession, slug: object, name: object) -> Topic:
    slug = clean_slug(slug)
    clean_name = clean_text(name, "name", 200, required=True)
    if session.scalar(select(Topic).where(Topic.slug == slug)) is not None:
        raise Conflict(f"Topic {slug!r} already exists.", {"slug": "already exists"})
    topic = Topic(slug=slug, name=clean_name)
    session.add(topic)
    session.commit()
    return topic


def article_json(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "url": article.url,
        "title": article.title,
        "author": article.author,
        "summary": article.summary,
        "body_html": article.body_html,
        "image_url": article.image_url,
        "published_at": article.published_at.isoformat(),
        "topics": [t.slug for t in article.topics],
    }
