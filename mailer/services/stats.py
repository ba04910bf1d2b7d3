"""Figures for the console: reader growth, edition rates, series for charts.

Every query is bounded (a window of days or a list of edition ids) and served by
an index, so pages stay fast with millions of readers and deliveries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from mailer.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Edition,
    EditionLink,
    Reader,
    ReaderEvent,
    utcnow,
)

# Events attributed to editions; `bounce` and `complaint` come from SMTP and webhooks.
OUTCOME_KINDS = ("unsubscribed", "bounce", "complaint")


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.substr(column, 1, 10)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _days(now: datetime, days: int) -> list[date]:
    start = now.date() - timedelta(days=days - 1)
    return [start + timedelta(days=n) for n in range(days)]


def reader_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Reader.status, func.count()).group_by(Reader.status))
    return {status: count for status, count in rows}


def reader_growth(session: Session, days: int = 30, now: datetime | None = None
                  ) -> list[tuple[date, int]]:
    """New readers per day over the last `days` days (index on created_at)."""
    now = now or utcnow()
    since = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(),
                             tzinfo=now.tzinfo)
    bucket = _day(session, Reader.created_at)
    rows = session.execute(
        select(bucket, func.count()).where(Reader.created_at >= since).group_by(bucket)
    )
    per_day = {_as_date(d): n for d, n in rows}
    return [(d, per_day.get(d, 0)) for d in _days(now, days)]


@dataclass
class EditionStats:
    id: int
    digest: str
    subject: str
    status: str
    created_at: datetime
    planned: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    opens: int = 0  # distinct readers
    clicks: int = 0  # distinct readers
    click_total: int = 0
    unsubscribes: int = 0
    bounces: int = 0
    complaints: int = 0
    filtered: int = 0  # scanner and prefetch hits left out of the counts
    links: list[dict[str, Any]] = field(default_factory=list)

    def rate(self, count: int) -> float:
        return round(100.0 * count / self.sent, 1) if self.sent else 0.0

    @property
    def open_rate(self) -> float:
        return self.rate(self.opens)

    @property
    def click_rate(self) -> float:
        return self.rate(self.clicks)

    @property
    def unsubscribe_rate(self) -> float:
        return self.rate(self.unsubscribes)

    @property
    def bounce_rate(self) -> float:
        return self.rate(self.bounces)


def edition_stats(session: Session, edition_ids: list[int]) -> list[EditionStats]:
    """Rates of several editions in a handful of grouped queries."""
    if not edition_ids:
        return []
    editions = session.scalars(select(Edition).where(Edition.id.in_(edition_ids))).all()
    out = {e.id: EditionStats(e.id, e.digest.name, e.subject, e.status, e.created_at,
                              planned=e.planned) for e in editions}
    for edition_id, status, count in session.execute(
        select(Delivery.edition_id, Delivery.status, func.count())
        .where(Delivery.edition_id.in_(edition_ids))
        .group_by(Delivery.edition_id, Delivery.status)
    ):
        s = out[edition_id]
        if status == DeliveryStatus.SENT:
            s.sent = count
        elif status == DeliveryStatus.FAILED:
            s.failed = count
            s.bounces += count
        elif status == DeliveryStatus.UNKNOWN:
            s.unknown = count
    for edition_id, kind, readers, hits in session.execute(
        select(ReaderEvent.edition_id, ReaderEvent.kind,
               func.count(func.distinct(ReaderEvent.reader_id)), func.count())
        .where(ReaderEvent.edition_id.in_(edition_ids))
        .group_by(ReaderEvent.edition_id, ReaderEvent.kind)
    ):
        s = out[edition_id]
        if kind == "open":
            s.opens = readers
        elif kind == "click":
            s.clicks, s.click_total = readers, hits
        elif kind in ("open-filtered", "click-filtered"):
            s.filtered += hits
        elif kind == "unsubscribed":
            s.unsubscribes += hits
        elif kind == "bounce":
            s.bounces += hits
        elif kind == "complaint":
            s.complaints += hits
    _attribute_outcomes(session, out)
    return [out[i] for i in edition_ids if i in out]


def _attribute_outcomes(session: Session, out: dict[int, EditionStats]) -> None:
    """Unsubscribes, bounces and complaints recorded without an edition (the
    unsubscribe link carries only the reader) count for the edition that reader
    was last sent before the event, within two weeks."""
    later = Delivery.__table__.alias("later")
    first_sent = session.scalar(
        select(func.min(Delivery.sent_at)).where(Delivery.edition_id.in_(list(out)))
    )
    if first_sent is None:
        return
    window = timedelta(days=14)
    rows = session.execute(
        select(Delivery.edition_id, ReaderEvent.kind, func.count())
        .join(Delivery, and_(Delivery.reader_id == ReaderEvent.reader_id,
                             Delivery.edition_id.in_(list(out)),
                             Delivery.sent_at <= ReaderEvent.created_at))
        .where(
            ReaderEvent.edition_id.is_(None),
            ReaderEvent.kind.in_(OUTCOME_KINDS),
            ReaderEvent.created_at >= first_sent,
            ReaderEvent.created_at <= first_sent + window * 4,
            ~select(later.c.id).where(
                later.c.reader_id == ReaderEvent.reader_id,
                later.c.sent_at > Delivery.sent_at,
                later.c.sent_at <= ReaderEvent.created_at,
            ).exists(),
        )
        .group_by(Delivery.edition_id, ReaderEvent.kind)
    )
    for edition_id, kind, count in rows:
        s = out[edition_id]
        if kind == "unsubscribed":
            s.unsubscribes += count
        elif kind == "bounce":
            # A hard bounce during sending is already a failed delivery.
            continue
        elif kind == "complaint":
            s.complaints += count


def recent_editions(session: Session, limit: int = 10) -> list[EditionStats]:
    ids = list(session.scalars(select(Edition.id).where(Edition.test_only.is_(False))
                               .order_by(Edition.created_at.desc(), Edition.id.desc())
                               .limit(limit)))
    return edition_stats(session, ids)


def link_stats(session: Session, edition_id: int) -> list[dict[str, Any]]:
    """Clicks per tracked link (and so per article) of one edition."""
    links = session.execute(
        select(EditionLink.id, EditionLink.url, EditionLink.article_id, Article.title)
        .outerjoin(Article, Article.id == EditionLink.article_id)
        .where(EditionLink.edition_id == edition_id).order_by(EditionLink.id)
    ).all()
    clicks: dict[int, int] = defaultdict(int)
    readers: dict[int, set[int]] = defaultdict(set)
    for reader_id, detail in session.execute(
        select(ReaderEvent.reader_id, ReaderEvent.detail)
        .where(ReaderEvent.edition_id == edition_id, ReaderEvent.kind == "click")
    ):
        link_id = (detail or {}).get("link")
        if isinstance(link_id, int):
            clicks[link_id] += 1
            if reader_id is not None:
                readers[link_id].add(reader_id)
    return [{"id": link_id, "url": url, "article_id": article_id, "title": title or "",
             "clicks": clicks[link_id], "readers": len(readers[link_id])}
            for link_id, url, article_id, title in links]


def article_stats(session: Session, article_id: int) -> dict[str, int]:
    """Opens and clicks of the editions that carried an article, and its own clicks."""
    link_rows = session.execute(
        select(EditionLink.id, EditionLink.edition_id).where(EditionLink.article_id == article_id)
    ).all()
    editions = sorted({edition_id for _, edition_id in link_rows})
    link_ids = {link_id for link_id, _ in link_rows}
    opens = session.scalar(
        select(func.count(func.distinct(ReaderEvent.reader_id)))
        .where(ReaderEvent.edition_id.in_(editions), ReaderEvent.kind == "open")
    ) if editions else 0
    clicks = 0
    if editions:
        for (detail,) in session.execute(
            select(ReaderEvent.detail).where(ReaderEvent.edition_id.in_(editions),
                                             ReaderEvent.kind == "click")
        ):
            if (detail or {}).get("link") in link_ids:
                clicks += 1
    return {"editions": len(editions), "opens": opens or 0, "clicks": clicks}


def activity_series(session: Session, days: int = 30, now: datetime | None = None
                    ) -> dict[str, list[tuple[date, int]]]:
    """Per day: sends, opens, clicks, unsubscribes, bounces (for the charts)."""
    now = now or utcnow()
    since = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(),
                             tzinfo=now.tzinfo)
    sent_day = _day(session, Delivery.sent_at)
    sends = {_as_date(d): n for d, n in session.execute(
        select(sent_day, func.count())
        .where(Delivery.sent_at >= since, Delivery.status == DeliveryStatus.SENT)
        .group_by(sent_day))}
    event_day = _day(session, ReaderEvent.created_at)
    kinds = {"open": "opens", "click": "clicks", "unsubscribed": "unsubscribes",
             "bounce": "bounces", "complaint": "bounces"}
    per_kind: dict[str, dict[date, int]] = {name: defaultdict(int) for name in kinds.values()}
    for kind, d, n in session.execute(
        select(ReaderEvent.kind, event_day, func.count())
        .where(ReaderEvent.created_at >= since, ReaderEvent.kind.in_(list(kinds)))
        .group_by(ReaderEvent.kind, event_day)
    ):
        per_kind[kinds[kind]][_as_date(d)] += n
    all_days = _days(now, days)
    series = {"sends": [(d, sends.get(d, 0)) for d in all_days]}
    for name, values in per_kind.items():
        series[name] = [(d, values.get(d, 0)) for d in all_days]
    return series
