"""Which readers a digest reaches and which articles are new for it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select

from mailer.common.errors import ValidationError
from mailer.models import (
    Article,
    Digest,
    Edition,
    EditionStatus,
    Frequency,
    Reader,
    ReaderStatus,
    Segment,
    article_topics,
    reader_topics,
)
from mailer.models.base import DbSession
from mailer.segments import condition as audience


def eligible_readers(digest: Digest, segment: Segment | None = None) -> ColumnElement[bool]:
    """Readers this digest goes to: confirmed, not paused, and either interested
    in one of its topics or with no topics chosen (they want everything).
    `segment` narrows one edition further (a one-off send to an audience)."""
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
    if segment is not None:
        condition = and_(condition, audience(segment.definition))
    return condition


def find_audience(session: DbSession, segment_id: object) -> Segment | None:
    """The audience a one-off edition targets (None: no narrowing); an unknown
    or malformed id is a ValidationError naming `segment_id`."""
    if segment_id is None or segment_id == "":
        return None
    if isinstance(segment_id, str) and segment_id.strip().isdigit():
        segment_id = int(segment_id.strip())
    segment = (session.get(Segment, segment_id)
               if isinstance(segment_id, int) and not isinstance(segment_id, bool)
               and 0 < segment_id < 2**31 else None)
    if segment is None:
        raise ValidationError(f"No audience {segment_id!r}.", {"segment_id": "unknown audience"})
    return segment


def edition_segment(session: DbSession, edition: Edition) -> Segment | None:
    """The audience an edition was started for; fails closed if it is gone."""
    if edition.segment_id is None:
        return None
    segment = session.get(Segment, edition.segment_id)
    if segment is None:
        raise LookupError(f"audience {edition.segment_id} of edition {edition.id} is gone")
    return segment


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
