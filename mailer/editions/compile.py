"""Compile an edition's MJML once per distinct article selection (edition variants)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from mailer.config import Settings
from mailer.mail.rendering import (
    HTML_BUDGET_BYTES,
    CardDeck,
    CompiledEmail,
    TemplateError,
    compile_capped,
)
from mailer.models import (
    Article,
    Digest,
    Edition,
    EditionVariant,
    Topic,
    variant_articles,
)
from mailer.models.base import DbSession
from mailer.readers import Publication, load_publication, publication_defaults


def _article(a: Article, section: str) -> dict[str, Any]:
    return {
        "id": a.id,
        "url": a.url,
        "title": a.title,
        "author": a.author,
        "summary": a.summary,
        "image_url": a.image_url,
        "published_at": a.published_at,
        "topics": [t.name for t in a.topics],
        "section": section,
    }


def _primary_topic(article: Article, digest_topic_ids: set[int]) -> Topic | None:
    """The topic an article is filed under: its first topic the digest carries
    (any of its topics when the digest takes every topic)."""
    for topic in sorted(article.topics, key=lambda t: t.id):
        if not digest_topic_ids or topic.id in digest_topic_ids:
            return topic
    return None


def arrange(digest: Digest, articles: Sequence[Article]) -> tuple[dict[str, Any] | None,
                                                                list[dict[str, Any]]]:
    """(lead story, sections): the first article leads; the others are grouped by
    topic, sections in the digest's `section_order` (topic slugs), then the other
    topics by name, then stories without a topic under "More stories". Within a
    section the stories keep their order (editorial order, else newest first)."""
    if not articles:
        return None, []
    digest_topic_ids = {t.id for t in digest.topics}
    filed = [(a, _primary_topic(a, digest_topic_ids)) for a in articles]
    lead_article, lead_topic = filed[0]
    lead = _article(lead_article, lead_topic.name if lead_topic else "")
    groups: dict[str, dict[str, Any]] = {}
    for article, topic in filed[1:]:
        slug, name = (topic.slug, topic.name) if topic else ("", "More stories")
        group = groups.setdefault(slug, {"slug": slug, "name": name, "articles": []})
        group["articles"].append(_article(article, name))
    rank = {slug: n for n, slug in enumerate(digest.section_order or [])}
    sections = sorted(groups.values(), key=lambda g: (
        g["slug"] == "", rank.get(g["slug"], len(rank)), g["name"].lower()))
    return lead, sections


def compile_context(
    settings: Settings, digest: Digest, edition: Edition, articles: list[Article],
    publication: Publication | None = None,
) -> dict[str, Any]:
    lead, sections = arrange(digest, articles)
    return {
        "publication": (publication or publication_defaults(settings)).context(),
        "digest": {"name": digest.name, "subject": digest.subject},
        "edition": {"id": edition.id, "date": edition.created_at},
        "intro_paragraphs": [p.strip() for p in (digest.intro or "").split("\n\n") if p.strip()],
        "lead": lead,
        "sections": sections,
        "articles": [lead, *[a for section in sections for a in section["articles"]]]
        if lead else [],
        "base_url": settings.base_url,
        "archive_url": f"{settings.base_url}/archive/{edition.id}",
    }


@dataclass(frozen=True)
class CompiledSelection:
    email: CompiledEmail
    article_ids: list[int]  # the cards kept, in order
    truncated: int  # cards left out by the size guard


def _articles_in_order(session: DbSession, article_ids: Sequence[int]) -> list[Article]:
    """The articles of `article_ids` in that order (one query), skipping deleted ones."""
    by_id = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(list(article_ids))))}
    return [by_id[i] for i in article_ids if i in by_id]


def _with_fixed_subject(edition: Edition, email: CompiledEmail) -> CompiledEmail:
    """An editor's subject for this edition (set on a draft), else the digest's
    fixed subject, replaces the template's."""
    fixed = edition.subject or edition.digest.subject
    return CompiledEmail(fixed, email.html, email.text) if fixed else email


def _compile_articles(settings: Settings, edition: Edition, articles: list[Article],
                      publication: Publication, budget: int = HTML_BUDGET_BYTES
                      ) -> CompiledSelection:
    digest = edition.digest
    compiled, kept = compile_capped(
        digest.template,
        lambda n: compile_context(settings, digest, edition, articles[:n], publication),
        len(articles),
        budget,
    )
    return CompiledSelection(_with_fixed_subject(edition, compiled),
                             [a.id for a in articles[:kept]], len(articles) - kept)


def compile_selection(
    session: DbSession, settings: Settings, edition: Edition, article_ids: Sequence[int],
    *, budget: int = HTML_BUDGET_BYTES,
) -> CompiledSelection:
    """Compile one article selection once (MJML), capped against Gmail clipping."""
    return _compile_articles(settings, edition, _articles_in_order(session, article_ids),
                             load_publication(session, settings), budget)


def selection_key(article_ids: Sequence[int]) -> str:
    """Identifies an ordered selection; the same selection shares one compile."""
    return hashlib.sha256(json.dumps(list(article_ids)).encode()).hexdigest()[:32]


class SelectionCompiler:
    """Compiles the selections of one edition: MJML once for all their articles
    (a CardDeck), each selection assembled from its cards. Templates without
    card markers fall back to one compile per selection."""

    def __init__(self, session: DbSession, settings: Settings, edition: Edition,
                 article_ids: Sequence[int]) -> None:
        self.settings, self.edition = settings, edition
        self.publication = load_publication(session, settings)
        articles = _articles_in_order(session, article_ids)
        self.by_id = {a.id: a for a in articles}
        self.deck: CardDeck | None = None
        if articles:
            try:
                self.deck = CardDeck(edition.digest.template,
                                     compile_context(settings, edition.digest, edition, articles,
                                                     self.publication))
            except TemplateError:
                self.deck = None
        self.mjml_compiles = 1 if self.deck else 0

    def compile(self, article_ids: Sequence[int]) -> CompiledSelection:
        if self.deck is None:
            self.mjml_compiles += 1
            articles = [self.by_id[i] for i in article_ids if i in self.by_id]
            return _compile_articles(self.settings, self.edition, articles, self.publication)
        ids = [i for i in article_ids if i in self.deck.cards]
        email, kept = self.deck.assemble(ids)
        return CompiledSelection(_with_fixed_subject(self.edition, email), ids[:kept],
                                 len(ids) - kept)


def add_variant(
    session: DbSession, edition: Edition, article_ids: Sequence[int], compiled: CompiledSelection
) -> EditionVariant:
    variant = EditionVariant(
        edition_id=edition.id,
        selection_key=selection_key(article_ids),
        article_ids=compiled.article_ids,
        subject=compiled.email.subject,
        html=compiled.email.html,
        text=compiled.email.text,
        truncated=compiled.truncated,
    )
    session.add(variant)
    session.flush()
    if compiled.article_ids:
        session.execute(insert(variant_articles),
                        [{"variant_id": variant.id, "article_id": a} for a in compiled.article_ids])
    return variant


def web_variant(session: DbSession, edition: Edition) -> EditionVariant | None:
    """The edition as the archive shows it: the digest-level selection."""
    variant = session.scalar(
        select(EditionVariant).where(EditionVariant.edition_id == edition.id,
                                     EditionVariant.selection_key == selection_key(edition.article_ids))
    )
    if variant is None:
        variant = session.scalar(
            select(EditionVariant).where(EditionVariant.edition_id == edition.id)
            .order_by(EditionVariant.id).limit(1)
        )
    return variant
