"""Editions: choose articles, compile once, plan the ledger, control the send."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, insert, not_, or_, select, update

from mailer.config import Settings
from mailer.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    Edition,
    EditionStatus,
    EditionVariant,
    Frequency,
    Reader,
    ReaderStatus,
    article_topics,
    reader_topics,
    utcnow,
    variant_articles,
)
from mailer.models.base import DbSession
from mailer.editions import planning
from mailer.editions import tracking
from mailer.content.digests import find_digest
from mailer.common.errors import Conflict, NotFound
from mailer.mail.rendering import (
    HTML_BUDGET_BYTES,
    CardDeck,
    CompiledEmail,
    TemplateError,
    compile_capped,
)
from mailer.jobs import enqueue_on_commit

log = logging.getLogger(__name__)


def eligible_readers(digest: Digest) -> ColumnElement[bool]:
    """Readers this digest goes to: confirmed, not paused, and either interested
    in one of its topics or with no topics chosen (they want everything)."""
    condition = and_(Reader.status == ReaderStatus.CONFIRMED, Reader.frequency != Frequency.PAUSED)
    topic_ids = [t.id for t in digest.topics]
    if topic_ids:
        has_topic = exists().where(
            reader_topics.c.reader_id == Reader.id, reader_topics.c.topic_id.in_(topic_ids)
        )
        has_none = not_(exists().where(reader_topics.c.reader_id == Reader.id))
        condition = and_(condition, or_(has_topic, has_none))
    return condition


def already_sent_article_ids(session: DbSession, digest_id: int) -> set[int]:
    rows = session.scalars(
        select(Edition.article_ids).where(
            Edition.digest_id == digest_id,
            Edition.test_only.is_(False),
            Edition.status.in_(
                [EditionStatus.SENDING, EditionStatus.PAUSED, EditionStatus.DONE,
                 EditionStatus.COMPILING]
            ),
        )
    )
    return {article_id for ids in rows for article_id in (ids or [])}


def select_articles(session: DbSession, digest: Digest, now: datetime) -> list[Article]:
    """The newest articles in the digest's topics that no earlier edition carried."""
    query = select(Article).where(Article.published_at <= now)
    topic_ids = [t.id for t in digest.topics]
    if topic_ids:
        query = query.where(
            exists().where(
                article_topics.c.article_id == Article.id, article_topics.c.topic_id.in_(topic_ids)
            )
        )
    seen = already_sent_article_ids(session, digest.id)
    if seen:
        query = query.where(Article.id.not_in(seen))
    query = query.order_by(Article.published_at.desc(), Article.id.desc()).limit(digest.max_articles)
    return list(session.scalars(query))


def start_edition(
    session: DbSession,
    digest_ref: object,
    *,
    created_by: str = "",
    slot: str | None = None,
    now: datetime | None = None,
) -> Edition:
    """Check there is something to send and someone to send it to, then create
    the edition and queue its compilation. Commits; nothing is created on error."""
    now = now or utcnow()
    digest = find_digest(session, digest_ref)
    readers = session.scalar(select(func.count()).select_from(Reader).where(eligible_readers(digest)))
    if not readers:
        raise Conflict(f"Digest {digest.name!r} has no confirmed readers to send to.",
                       {"digest": "no confirmed readers"})
    article_ids = [a.id for a in select_articles(session, digest, now)]
    if not article_ids:
        # Nothing new for the digest as a whole; daily and weekly readers may still
        # be owed what came out while they were not due. The edition then carries
        # (and its archive page shows) the newest of those articles.
        owed = planning.due_selections(session, digest, eligible_readers(digest), now)
        if not owed:
            raise Conflict(f"Digest {digest.name!r} has no new articles to send.",
                           {"digest": "no new articles"})
        union = {article_id for selection in owed for article_id in selection}
        newest_first = [a.id for a in planning.article_pool(session, digest, now) if a.id in union]
        article_ids = newest_first[:digest.max_articles]
    edition = Edition(
        digest=digest,
        slot=slot or f"manual-{uuid.uuid4().hex}",
        status=EditionStatus.DRAFT if digest.approval == "draft" and slot else
        EditionStatus.COMPILING,
        article_ids=article_ids,
        created_by=created_by,
        created_at=now,
    )
    session.add(edition)
    session.flush()
    if edition.status == EditionStatus.COMPILING:
        enqueue_on_commit(session, "mailer.prepare_edition", edition.id)
    session.commit()
    return edition


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


def prepare_edition(session: DbSession, settings: Settings, edition_id: int) -> int:
    """Choose each reader's articles, compile MJML once for the edition (each
    distinct selection is assembled from its cards into one EditionVariant), and
    plan the delivery rows with one INSERT ... SELECT (see services/planning.py).
    Returns the number planned. Idempotent: only a `compiling` edition is prepared;
    the row lock (PostgreSQL) makes a second, concurrent run wait and then see it done."""
    session.execute(select(Edition.id).where(Edition.id == edition_id).with_for_update())
    edition = session.get(Edition, edition_id, populate_existing=True)
    if edition is None or edition.status != EditionStatus.COMPILING:
        return 0
    digest = edition.digest
    now = utcnow()
    cutoff = edition.created_at
    clock = _StageClock()
    pool = planning.article_pool(session, digest, cutoff)
    recent = planning.recent_editions(session, digest, edition.id, cutoff)
    rows = planning.per_reader_rows(session, digest, edition.id, eligible_readers(digest), pool,
                                    recent, cutoff)
    planning.materialize(session, rows)
    clock.lap("readers")
    groups = planning.reader_groups(session)

    chosen_by_group = [
        (group, planning.choose(group, pool, recent, cutoff - planning.LOOKBACK, digest.max_articles))
        for group in groups
    ]
    # The public web version (archive) is the edition's own selection.
    web = tuple(edition.article_ids or ())
    selections = {chosen for _, chosen in chosen_by_group if chosen}
    if web:
        selections.add(web)
    order = {a.id: n for n, a in enumerate(pool)}
    union = sorted({a for s in selections for a in s}, key=lambda a: order.get(a, len(order)))
    compiler = SelectionCompiler(session, settings, edition, union)
    clock.lap("groups")
    variants = {chosen: add_variant(session, edition, chosen, compiler.compile(chosen)).id
                for chosen in sorted(selections)}
    if settings.tracking:  # opt-in (MAILER_TRACKING): tracked links and an open pixel
        tracking.track_variants(session, edition.id, settings.base_url)
    clock.lap("variants")
    # Readers whose selection is empty get no variant: no row, no email.
    assignments = [(group, variants[chosen]) for group, chosen in chosen_by_group if chosen]
    planning.insert_deliveries(session, edition.id, assignments, now)
    planning.drop_scratch(session)
    clock.lap("deliveries")

    # rowcount of INSERT ... SELECT is not reliable on every driver: count instead.
    planned = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition.id)
    ) or 0
    edition.planned = planned
    edition.subject = (web_variant(session, edition) or EditionVariant(subject="")).subject
    edition.started_at = now
    edition.last_activity_at = now
    edition.status = EditionStatus.SENDING if planned else EditionStatus.DONE
    if not planned:
        edition.finished_at = now
    digest.last_run_at = now
    for _ in range(max(1, settings.send_lanes)):
        if planned:
            enqueue_on_commit(session, "mailer.send_lane", edition.id)
    session.commit()
    clock.lap("commit")
    log.info("edition %s planned %s readers in %s groups, %s variants, %s MJML compile(s): %s",
             edition_id, planned, len(groups), len(variants), compiler.mjml_compiles, clock)
    return planned


class _StageClock:
    """Seconds per planning stage, for the log line operators read."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: list[str] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append(f"{name} {now - self.last:.3f}s")
        self.last = now

    def __str__(self) -> str:
        return ", ".join(self.laps) + f" (total {self.last - self.start:.3f}s)"


def fail_edition(session: DbSession, edition_id: int, error: str) -> None:
    session.rollback()
    session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == EditionStatus.COMPILING)
        .values(status=EditionStatus.FAILED, error=error[:2000])
    )
    session.commit()


def _get(session: DbSession, edition_id: int) -> Edition:
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise NotFound(f"No edition {edition_id}.")
    return edition


def _transition(session: DbSession, edition_id: int, from_: tuple[str, ...], to: str) -> bool:
    result = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status.in_(from_))
        .values(status=to, last_activity_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def pause_edition(session: DbSession, edition_id: int) -> Edition:
    edition = _get(session, edition_id)
    if not _transition(session, edition_id, (EditionStatus.SENDING,), EditionStatus.PAUSED):
        raise Conflict(f"Edition {edition_id} is {edition.status}; only a sending edition pauses.")
    session.commit()
    session.refresh(edition)
    return edition


def resume_edition(session: DbSession, settings: Settings, edition_id: int) -> Edition:
    edition = _get(session, edition_id)
    if not _transition(session, edition_id, (EditionStatus.PAUSED,), EditionStatus.SENDING):
        raise Conflict(f"Edition {edition_id} is {edition.status}; only a paused edition resumes.")
    for _ in range(max(1, settings.send_lanes)):
        enqueue_on_commit(session, "mailer.send_lane", edition_id)
    session.commit()
    session.refresh(edition)
    return edition


def approve_edition(session: DbSession, edition_id: int) -> Edition:
    edition = _get(session, edition_id)
    if not _transition(session, edition_id, (EditionStatus.DRAFT,), EditionStatus.COMPILING):
        raise Conflict(f"Edition {edition_id} is {edition.status}; only a draft is approved.")
    enqueue_on_commit(session, "mailer.prepare_edition", edition_id)
    session.commit()
    session.refresh(edition)
    return edition


def cancel_edition(session: DbSession, edition_id: int) -> Edition:
    """Stop for good: what is not yet in an SMTP transaction will not be sent."""
    edition = _get(session, edition_id)
    open_states = (*EditionStatus.OPEN, EditionStatus.DRAFT)
    if not _transition(session, edition_id, open_states, EditionStatus.CANCELLED):
        raise Conflict(f"Edition {edition_id} is {edition.status}; it cannot be cancelled.")
    session.execute(
        update(Delivery)
        .where(
            Delivery.edition_id == edition_id,
            Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRY,
                                 DeliveryStatus.CLAIMED]),
        )
        .values(status=DeliveryStatus.CANCELLED, claimed_by="")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Edition).where(Edition.id == edition_id).values(finished_at=utcnow())
    )
    session.commit()
    session.refresh(edition)
    return edition


def status_counts(session: DbSession, edition_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.edition_id == edition_id)
        .group_by(Delivery.status)
    )
    return {status: count for status, count in rows}


def progress(session: DbSession, edition_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Counters for API, CLI and console: planned, sent, failed, unknown, remaining,
    rate (messages/s over the last minute) and ETA (seconds)."""
    now = now or utcnow()
    edition = _get(session, edition_id)
    counts = status_counts(session, edition_id)
    remaining = sum(counts.get(s, 0) for s in DeliveryStatus.OUTSTANDING)
    window = 60
    recent = session.scalar(
        select(func.count()).select_from(Delivery).where(
            Delivery.edition_id == edition_id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at >= now - timedelta(seconds=window),
        )
    ) or 0
    if edition.started_at and (now - edition.started_at).total_seconds() < window:
        window = max(1, int((now - edition.started_at).total_seconds()))
    rate = recent / window
    return {
        "id": edition.id,
        "digest": edition.digest.name,
        "digest_id": edition.digest_id,
        "status": edition.status,
        "subject": edition.subject,
        "planned": edition.planned or sum(counts.values()),
        "sent": counts.get(DeliveryStatus.SENT, 0),
        "failed": counts.get(DeliveryStatus.FAILED, 0),
        "unknown": counts.get(DeliveryStatus.UNKNOWN, 0),
        "skipped": counts.get(DeliveryStatus.SKIPPED, 0),
        "cancelled": counts.get(DeliveryStatus.CANCELLED, 0),
        "retrying": counts.get(DeliveryStatus.RETRY, 0),
        "remaining": remaining,
        "rate": round(rate, 1),
        "eta_seconds": round(remaining / rate) if rate > 0 and remaining else None,
        "error": edition.error,
        "created_at": edition.created_at.isoformat(),
        "started_at": edition.started_at.isoformat() if edition.started_at else None,
        "finished_at": edition.finished_at.isoformat() if edition.finished_at else None,
    }
