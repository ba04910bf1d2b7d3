"""Per-reader digests planned with set-based SQL.

A reader's digest holds the articles of the digest's pool (recent articles in the
digest's topics) that are in the reader's topics, published after the reader's
previous edition of this digest, and that the reader never received from any
digest; at most `max_articles`, newest first.

Readers are never looped over in Python. One grouped query sorts them into
groups that must get the same selection: (their topics within the digest, the
last edition of this digest they received, the pool articles they already
received). Python picks the articles per group (a few hundred groups at most),
each distinct selection becomes one `EditionVariant`, and one INSERT ... SELECT
writes the delivery rows with their
variant. Readers whose selection is empty get no row: no articles, no email.
The per-reader rows are computed once into a TEMPORARY table (per connection).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Select,
    String,
    Subquery,
    Table,
    Text,
    and_,
    cast,
    func,
    insert,
    literal,
    not_,
    select,
)

from mailer.database import on_postgres
from mailer.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    Edition,
    EditionStatus,
    Frequency,
    Reader,
    article_topics,
    reader_topics,
    variant_articles,
)
from mailer.models.base import DbSession, UTCDateTime

# How far back a digest looks for articles; also the window in which a reader's
# previous edition counts (older means "no previous digest": newest articles).
LOOKBACK = timedelta(days=8)
POOL_LIMIT = 500
# A daily reader gets at most one digest per day. The hour of slack lets a
# digest scheduled every day at 07:00 reach them although yesterday's edition
# started a few seconds after 07:00.
FREQUENCY_GAP = {
    Frequency.DAILY: timedelta(hours=23),
    Frequency.WEEKLY: timedelta(days=7) - timedelta(hours=1),
}
# Deliveries that count as "the reader has (or will have) these articles".
RECEIVED = (
    DeliveryStatus.SENT, DeliveryStatus.UNKNOWN, DeliveryStatus.PENDING,
    DeliveryStatus.CLAIMED, DeliveryStatus.SENDING, DeliveryStatus.RETRY, DeliveryStatus.HELD,
    DeliveryStatus.WAITING,
)


@dataclass(frozen=True)
class PoolArticle:
    id: int
    published_at: datetime
    topic_ids: frozenset[int]


@dataclass(frozen=True)
class ReaderGroup:
    topic_sig: str  # comma-separated topic ids within the digest; "" = all topics
    last_edition_id: int  # 0 = no recent edition of this digest received
    received_sig: str  # pool article ids already received, comma-separated
    readers: int


def _ids(sig: str) -> frozenset[int]:
    return frozenset(int(x) for x in sig.split(",") if x)



def _id_list(session: DbSession, pairs: Select[tuple[int, int]], label: str):  # type: ignore[no-untyped-def]
    """(key, id) pairs -> (key, "id,id,...") per key. Ordered on PostgreSQL; on
    SQLite (no ORDER BY in group_concat before 3.44) usually ordered. Order only
    affects how many groups there are, never which articles a reader gets: the
    signature is parsed back into a set."""
    joined: ColumnElement[str]
    if on_postgres(session):
        inner = pairs.subquery()
        joined = func.aggregate_strings(cast(inner.c[1], String), ",").aggregate_order_by(inner.c[1])
    else:
        inner = pairs.order_by(*pairs.selected_columns).subquery()
        joined = func.aggregate_strings(cast(inner.c[1], String), ",")
    key = inner.c[0]
    return select(key.label("reader_id"), joined.label(label)).group_by(key).subquery()


def article_pool(session: DbSession, digest: Digest, now: datetime) -> list[PoolArticle]:
    """Recent articles in the digest's topics, newest first."""
    query = select(Article.id, Article.published_at).where(
        Article.published_at <= now, Article.published_at > now - LOOKBACK
    )
    digest_topics = [t.id for t in digest.topics]
    if digest_topics:
        query = query.where(
            select(article_topics.c.article_id)
            .where(article_topics.c.article_id == Article.id,
                   article_topics.c.topic_id.in_(digest_topics))
            .exists()
        )
    rows = session.execute(
        query.order_by(Article.published_at.desc(), Article.id.desc()).limit(POOL_LIMIT)
    ).all()
    topics: dict[int, set[int]] = {article_id: set() for article_id, _ in rows}
    if rows:
        for article_id, topic_id in session.execute(
            select(article_topics.c.article_id, article_topics.c.topic_id)
            .where(article_topics.c.article_id.in_(list(topics)))
        ):
            topics[article_id].add(topic_id)
    return [PoolArticle(a, p, frozenset(topics[a])) for a, p in rows]


def editions_in_lookback(session: DbSession, digest: Digest, edition_id: int, now: datetime
                    ) -> dict[int, datetime]:
    """Editions of this digest other than `edition_id` inside the look-back window: id -> start."""
    rows = session.execute(
        select(Edition.id, Edition.created_at).where(
            Edition.digest_id == digest.id,
            Edition.id != edition_id,
            Edition.test_only.is_(False),
            Edition.created_at > now - LOOKBACK,
            Edition.status.not_in([EditionStatus.DRAFT, EditionStatus.FAILED]),
        )
    ).all()
    return {edition_id: created_at for edition_id, created_at in rows}


def per_reader_rows(
    session: DbSession,
    digest: Digest,
    edition_id: int,
    eligible: ColumnElement[bool],
    pool: Sequence[PoolArticle],
    recent: dict[int, datetime],
    now: datetime,
) -> Subquery:
    """One row per reader due for this edition: (reader_id, topic_sig, last_id, received_sig)."""
    digest_topics = [t.id for t in digest.topics]
    topic_pairs = select(reader_topics.c.reader_id, reader_topics.c.topic_id)
    if digest_topics:
        topic_pairs = topic_pairs.where(reader_topics.c.topic_id.in_(digest_topics))
    topic_sigs = _id_list(session, topic_pairs, "sig")

    received = Delivery.status.in_(RECEIVED)
    query = select(Reader.id.label("reader_id"), func.coalesce(topic_sigs.c.sig, "").label("topic_sig"))
    query = query.outerjoin(topic_sigs, topic_sigs.c.reader_id == Reader.id)
    conditions = [eligible]

    if recent:
        last = (
            select(Delivery.reader_id.label("reader_id"), func.max(Delivery.edition_id).label("last_id"))
            .where(Delivery.edition_id.in_(list(recent)), received)
            .group_by(Delivery.reader_id)
            .subquery()
        )
        last_id: ColumnElement[int] = func.coalesce(last.c.last_id, 0)
        query = query.outerjoin(last, last.c.reader_id == Reader.id)
        for frequency, gap in FREQUENCY_GAP.items():
            too_soon = [eid for eid, started in recent.items() if started > now - gap]
            if too_soon:
                conditions.append(not_(and_(Reader.frequency == frequency, last_id.in_(too_soon))))
    else:
        last_id = literal(0)
    query = query.add_columns(last_id.label("last_id"))

    if pool:
        # Pool articles each reader already got, from any digest. An edition can
        # only carry articles published before it started, so only editions of
        # the look-back window matter: walk their deliveries (edition index) to
        # the variant's articles (primary key), never all history.
        window = select(Edition.id).where(Edition.created_at > now - LOOKBACK, Edition.id != edition_id)
        pairs = (
            select(Delivery.reader_id, variant_articles.c.article_id)
            .select_from(Delivery)
            .join(variant_articles, variant_articles.c.variant_id == Delivery.variant_id)
            .where(Delivery.edition_id.in_(window), received,
                   variant_articles.c.article_id.in_([a.id for a in pool]))
            .distinct()
        )
        got = _id_list(session, pairs, "sig")
        query = query.outerjoin(got, got.c.reader_id == Reader.id)
        query = query.add_columns(func.coalesce(got.c.sig, "").label("received_sig"))
    else:
        query = query.add_columns(literal("").label("received_sig"))
    return query.where(*conditions).subquery()


# Scratch tables for one planning run, private to the connection (TEMPORARY):
# the per-reader rows are computed once, then grouped and joined to variants.
_scratch = MetaData()
plan_readers = Table(
    "plan_readers", _scratch,
    Column("reader_id", Integer, primary_key=True),
    Column("topic_sig", Text), Column("last_id", Integer), Column("received_sig", Text),
    prefixes=["TEMPORARY"],
)
plan_groups = Table(
    "plan_groups", _scratch,
    Column("topic_sig", Text, primary_key=True), Column("last_id", Integer, primary_key=True),
    Column("received_sig", Text, primary_key=True), Column("variant_id", Integer),
    prefixes=["TEMPORARY"],
)


def materialize(session: DbSession, rows) -> None:  # type: ignore[no-untyped-def]
    """Compute the per-reader rows once into a temporary table."""
    connection = session.connection()
    for table in (plan_readers, plan_groups):
        table.drop(connection, checkfirst=True)
        table.create(connection)
    session.execute(insert(plan_readers).from_select(
        ["reader_id", "topic_sig", "last_id", "received_sig"],
        select(rows.c.reader_id, rows.c.topic_sig, rows.c.last_id, rows.c.received_sig),
    ))


def drop_scratch(session: DbSession) -> None:
    connection = session.connection()
    for table in (plan_readers, plan_groups):
        table.drop(connection, checkfirst=True)


def reader_groups(session: DbSession, rows: Any = plan_readers) -> list[ReaderGroup]:
    """Readers sharing a selection, from the scratch table (or per_reader_rows directly)."""
    r = rows.c
    result = session.execute(
        select(r.topic_sig, r.last_id, r.received_sig, func.count())
        .group_by(r.topic_sig, r.last_id, r.received_sig)
    )
    return [ReaderGroup(str(t), int(last), str(got), int(n)) for t, last, got, n in result]


def choose(
    group: ReaderGroup,
    pool: Sequence[PoolArticle],
    recent: dict[int, datetime],
    lower_bound: datetime,
    max_articles: int,
) -> tuple[int, ...]:
    """The articles one group of readers gets, newest first."""
    topics = _ids(group.topic_sig)
    got = _ids(group.received_sig)
    since = recent.get(group.last_edition_id, lower_bound)
    chosen: list[int] = []
    for article in pool:
        if article.published_at <= since or article.id in got:
            continue
        if topics and not (article.topic_ids & topics):
            continue
        chosen.append(article.id)
        if len(chosen) >= max_articles:
            break
    return tuple(chosen)


def due_selections(session: DbSession, digest: Digest, eligible: ColumnElement[bool],
                   now: datetime) -> list[tuple[int, ...]]:
    """What the readers due now would get from a new edition, newest first per
    selection, without writing anything. Answers the question a quiet day asks:
    nothing is new for the digest, but is a daily or weekly reader still owed
    articles that came out while they were not due?"""
    pool = article_pool(session, digest, now)
    if not pool:
        return []
    recent = editions_in_lookback(session, digest, 0, now)
    groups = reader_groups(session, per_reader_rows(session, digest, 0, eligible, pool, recent, now))
    chosen = (choose(group, pool, recent, now - LOOKBACK, digest.max_articles) for group in groups)
    return [selection for selection in chosen if selection]


def reach(session: DbSession, digest: Digest, eligible: ColumnElement[bool], now: datetime
          ) -> tuple[int, int]:
    """(readers, distinct selections) an edition started now would have: the same
    grouping and choice as prepare, counted instead of written (a dry run)."""
    pool = article_pool(session, digest, now)
    if not pool:
        return 0, 0
    recent = editions_in_lookback(session, digest, 0, now)
    groups = reader_groups(session, per_reader_rows(session, digest, 0, eligible, pool, recent, now))
    readers, selections = 0, set()
    for group in groups:
        chosen = choose(group, pool, recent, now - LOOKBACK, digest.max_articles)
        if chosen:
            readers += group.readers
            selections.add(chosen)
    return readers, len(selections)


def insert_deliveries(
    session: DbSession,
    edition_id: int,
    assignments: Iterable[tuple[ReaderGroup, int]],
    now: datetime,
    columns: Mapping[str, ColumnElement[Any]] | None = None,
    waiting_until: tuple[Table, datetime] | None = None,
) -> None:
    """One INSERT ... SELECT writes every delivery row, each reader's group joined
    to its variant; readers of groups without a variant get no row. `columns`
    replaces or adds computed columns (an A/B test's status and subject index).

    `waiting_until` (reader-local editions, see `editions.zones`): a (zone, send_at)
    table and the instant for zones not in it; each row is then written `waiting`
    with its reader's zone's instant, in the same statement. An A/B test is sent now
    (one sample, one decision), so the two never combine."""
    items = [{"topic_sig": g.topic_sig, "last_id": g.last_edition_id,
              "received_sig": g.received_sig, "variant_id": variant_id}
             for g, variant_id in assignments]
    if not items:
        return
    session.execute(insert(plan_groups), items)
    r, g = plan_readers.c, plan_groups.c
    source = plan_readers.join(plan_groups, and_(
        g.topic_sig == r.topic_sig, g.last_id == r.last_id, g.received_sig == r.received_sig))
    values: dict[str, ColumnElement[Any]] = {
        "edition_id": literal(edition_id), "reader_id": r.reader_id, "variant_id": g.variant_id,
        "status": literal(DeliveryStatus.PENDING), "attempts": literal(0),
        "claimed_by": literal(""), "error": literal(""), "created_at": literal(now),
    }
    if columns:
        values.update(columns)
    elif waiting_until is not None:
        zones, fallback = waiting_until
        source = (source.join(Reader, Reader.id == r.reader_id)
                  .outerjoin(zones, zones.c.zone == Reader.timezone))
        values["status"] = literal(DeliveryStatus.WAITING)
        values["next_attempt_at"] = func.coalesce(zones.c.send_at,
                                                  literal(fallback, UTCDateTime()))
    session.execute(
        insert(Delivery).from_select(
            list(values),
            select(*values.values()).select_from(source)
            # Ids follow variants: lanes claim by id, so a batch needs few MIME skeletons.
            .order_by(g.variant_id, r.reader_id),
        )
    )
