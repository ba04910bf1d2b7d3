"""Which readers a digest reaches and which articles are new for it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select

from mailer.models import (
    Article,
    Digest,
    Edition,
    EditionStatus,
    Frequency,
    Reader,
    ReaderStatus,
    article_topics,
    reader_topics,
)
from mailer.models.base import DbSession
from mailer.segments import condition as audience


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
    if digest.segment is not None:  # an audience narrows it further
        condition = and_(condition, audience(digest.segment.definition))
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
