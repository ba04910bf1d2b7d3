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
    variant_articles,
)
from mailer.models.base import DbSession


def compile_context(
    settings: Settings, digest: Digest, edition: Edition, articles: list[Article]
) -> dict[str, Any]:
    return {
        "digest": {"name": digest.name, "subject": digest.subject},
        "edition": {"id": edition.id, "date": edition.created_at},
        "articles": [
            {
                "id": a.id,
                "url": a.url,
                "title": a.title,
                "author": a.author,
                "summary": a.summary,
                "image_url": a.image_url,
                "published_at": a.published_at,
                "topics": [t.name for t in a.topics],
            }
            for a in articles
        ],
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


def _with_digest_subject(digest: Digest, email: CompiledEmail) -> CompiledEmail:
    """A digest's fixed subject, when it has one, replaces the template's."""
    return CompiledEmail(digest.subject, email.html, email.text) if digest.subject else email


def _compile_articles(settings: Settings, edition: Edition, articles: list[Article],
                      budget: int = HTML_BUDGET_BYTES) -> CompiledSelection:
    digest = edition.digest
    compiled, kept = compile_capped(
        digest.template,
        lambda n: compile_context(settings, digest, edition, articles[:n]),
        len(articles),
        budget,
    )
    return CompiledSelection(_with_digest_subject(digest, compiled),
                             [a.id for a in articles[:kept]], len(articles) - kept)


def compile_selection(
    session: DbSession, settings: Settings, edition: Edition, article_ids: Sequence[int],
    *, budget: int = HTML_BUDGET_BYTES,
) -> CompiledSelection:
    """Compile one article selection once (MJML), capped against Gmail clipping."""
    return _compile_articles(settings, edition, _articles_in_order(session, article_ids), budget)


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
        articles = _articles_in_order(session, article_ids)
        self.by_id = {a.id: a for a in articles}
        self.deck: CardDeck | None = None
        if articles:
            try:
                self.deck = CardDeck(edition.digest.template,
                                     compile_context(settings, edition.digest, edition, articles))
            except TemplateError:
                self.deck = None
        self.mjml_compiles = 1 if self.deck else 0

    def compile(self, article_ids: Sequence[int]) -> CompiledSelection:
        if self.deck is None:
            self.mjml_compiles += 1
            articles = [self.by_id[i] for i in article_ids if i in self.by_id]
            return _compile_articles(self.settings, self.edition, articles)
        ids = [i for i in article_ids if i in self.deck.cards]
        email, kept = self.deck.assemble(ids)
        return CompiledSelection(_with_digest_subject(self.edition.digest, email), ids[:kept],
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
