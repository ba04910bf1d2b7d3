"""Figures for the console: reader growth, edition rates, series for charts.

Every query is bounded (a window of days or a list of edition ids) and served by
an index, so pages stay fast with millions of readers and deliveries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.exc import IntegrityError

from mailer.database import on_postgres
from mailer.editions import MACHINE_OPEN_KINDS, OPEN_MACHINE
from mailer.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Edition,
    EditionFigures,
    EditionLink,
    EditionStatus,
    Reader,
    ReaderEvent,
    utcnow,
)
from mailer.models.base import DbSession

# Events attributed to editions; `bounce` and `complaint` come from SMTP and webhooks.
OUTCOME_KINDS = ("unsubscribed", "bounce", "complaint")


def _day(session: DbSession, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, on SQLite and PostgreSQL."""
    if on_postgres(session):
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


def reader_counts(session: DbSession) -> dict[str, int]:
    rows = session.execute(select(Reader.status, func.count()).group_by(Reader.status))
    return {status: count for status, count in rows}


def reader_growth(session: DbSession, days: int = 30, now: datetime | None = None
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
    opens: int = 0  # distinct readers, human opens only (rates use these)
    opens_machine: int = 0  # distinct readers with a machine open (shown, never in rates)
    clicks: int = 0  # distinct readers
    click_total: int = 0
    unsubscribes: int = 0
    bounces: int = 0
    complaints: int = 0
    filtered: int = 0  # scanner and prefetch hits left out of the counts
    machine_seen: bool = False
    links: list[dict[str, Any]] = field(default_factory=list)
    # Sent with tracked links and an open pixel (MAILER_TRACKING was on): without
    # it, opens and clicks are unknown, not zero.
    tracked: bool = False

    def rate(self, count: int) -> float:
        return round(100.0 * count / self.sent, 1) if self.sent else 0.0

    def _tracked_rate(self, count: int) -> str:
        return f"{self.rate(count)}%" if self.tracked else "tracking off"

    @property
    def open_label(self) -> str:
        return self._tracked_rate(self.opens)

    @property
    def click_label(self) -> str:
        return self._tracked_rate(self.clicks)

    @property
    def unsubscribe_label(self) -> str:
        return f"{self.rate(self.unsubscribes)}%"

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


FINAL_EDITION_STATES = (EditionStatus.DONE, EditionStatus.CANCELLED, EditionStatus.FAILED)
COUNTED = ("planned", "sent", "failed", "unknown", "skipped", "cancelled")


def delivery_counts(session: DbSession, edition_ids: list[int]) -> dict[int, dict[str, int]]:
    """Deliveries per status. Finished editions are counted once and kept in
    edition_figures (their ledger no longer changes); others are counted live."""
    out: dict[int, dict[str, int]] = {}
    for row in session.scalars(select(EditionFigures).where(EditionFigures.edition_id.in_(edition_ids))):
        out[row.edition_id] = {name: getattr(row, name) for name in COUNTED}
    missing = [i for i in edition_ids if i not in out]
    if not missing:
        return out
    live: dict[int, dict[str, int]] = {i: defaultdict(int) for i in missing}
    for edition_id, status, count in session.execute(
        select(Delivery.edition_id, Delivery.status, func.count())
        .where(Delivery.edition_id.in_(missing))
        .group_by(Delivery.edition_id, Delivery.status)
    ):
        live[edition_id][status] = count
    final = dict(session.execute(
        select(Edition.id, Edition.status).where(Edition.id.in_(missing),
                                                 Edition.status.in_(FINAL_EDITION_STATES))).all())
    for edition_id, counts in live.items():
        counts["planned"] = sum(v for k, v in counts.items() if k != "planned")
        out[edition_id] = dict(counts)
        outstanding = sum(counts.get(s, 0) for s in DeliveryStatus.OUTSTANDING)
        if edition_id in final and not outstanding:
            _keep_figures(session, edition_id, counts)
    return out


def _keep_figures(session: DbSession, edition_id: int, counts: dict[str, int]) -> None:
    try:
        with session.begin_nested():
            session.add(EditionFigures(edition_id=edition_id,
                                       **{name: counts.get(name, 0) for name in COUNTED}))
        session.commit()
    except IntegrityError:  # another request stored the same figures first
        session.rollback()


def edition_stats(session: DbSession, edition_ids: list[int]) -> list[EditionStats]:
    """Rates of several editions in a handful of grouped queries."""
    if not edition_ids:
        return []
    editions = session.scalars(select(Edition).where(Edition.id.in_(edition_ids))).all()
    out = {e.id: EditionStats(e.id, e.digest.name, e.subject, e.status, e.created_at,
                              planned=e.planned) for e in editions}
    for edition_id, counts in delivery_counts(session, list(out)).items():
        s = out[edition_id]
        s.sent, s.failed, s.unknown = counts.get("sent", 0), counts.get("failed", 0), counts.get("unknown", 0)
        s.bounces += s.failed
        s.planned = s.planned or counts.get("planned", 0)
    # One row per open is recorded (the first), so count(*) is the number of readers.
    for event_edition, kind, hits in session.execute(
        select(ReaderEvent.edition_id, ReaderEvent.kind, func.count())
        .where(ReaderEvent.edition_id.in_(list(out)))
        .group_by(ReaderEvent.edition_id, ReaderEvent.kind)
    ):
        s = out[event_edition or 0]
        if kind == "open":
            s.opens = hits
        elif kind == "click":
            s.click_total = hits
        elif kind in ("open-filtered", "click-filtered"):
            s.filtered += hits
            s.machine_seen = True
        elif kind == OPEN_MACHINE:
            s.machine_seen = True
        elif kind == "unsubscribed":
            s.unsubscribes += hits
        elif kind == "bounce":
            s.bounces += hits
        elif kind == "complaint":
            s.complaints += hits
    for tracked_edition in session.scalars(
        select(EditionLink.edition_id).where(EditionLink.edition_id.in_(list(out))).distinct()
    ):
        out[tracked_edition].tracked = True
    machine = [i for i, s in out.items() if s.machine_seen]
    if machine:
        for machine_edition, readers in session.execute(
            select(ReaderEvent.edition_id, func.count(func.distinct(ReaderEvent.reader_id)))
            .where(ReaderEvent.edition_id.in_(machine), ReaderEvent.kind.in_(MACHINE_OPEN_KINDS))
            .group_by(ReaderEvent.edition_id)
        ):
            out[machine_edition or 0].opens_machine = readers
    clicked = [i for i, s in out.items() if s.click_total]
    if clicked:
        for clicked_edition, readers in session.execute(
            select(ReaderEvent.edition_id, func.count(func.distinct(ReaderEvent.reader_id)))
            .where(ReaderEvent.edition_id.in_(clicked), ReaderEvent.kind == "click")
            .group_by(ReaderEvent.edition_id)
        ):
            out[clicked_edition or 0].clicks = readers
    _attribute_outcomes(session, out)
    return [out[i] for i in edition_ids if i in out]


ATTRIBUTION_WINDOW = timedelta(days=14)
ATTRIBUTION_LIMIT = 20_000


def _attribute_outcomes(session: DbSession, out: dict[int, EditionStats]) -> None:
    """Unsubscribes and complaints recorded without an edition (the unsubscribe
    link carries only the reader) count for the edition that reader was last
    sent before the event, within two weeks."""
    started = [s.created_at for s in out.values()]
    if not started:
        return
    since, until = min(started), max(started) + 2 * ATTRIBUTION_WINDOW
    events = session.execute(
        select(ReaderEvent.reader_id, ReaderEvent.kind, ReaderEvent.created_at)
        .where(ReaderEvent.kind.in_(("unsubscribed", "complaint")),
               ReaderEvent.created_at >= since, ReaderEvent.created_at <= until,
               ReaderEvent.edition_id.is_(None), ReaderEvent.reader_id.is_not(None))
        .limit(ATTRIBUTION_LIMIT)
    ).all()
    if not events:
        return
    readers = sorted({reader_id for reader_id, _, _ in events if reader_id is not None})
    sent: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for start in range(0, len(readers), 1000):
        for reader_id, edition_id, sent_at in session.execute(
            select(Delivery.reader_id, Delivery.edition_id, Delivery.sent_at)
            .where(Delivery.reader_id.in_(readers[start:start + 1000]), Delivery.sent_at.is_not(None),
                   Delivery.sent_at >= since - ATTRIBUTION_WINDOW, Delivery.sent_at <= until)
        ):
            if sent_at is not None:  # filtered in SQL; narrows the type
                sent[reader_id].append((sent_at, edition_id))
    for event_reader, kind, at in events:
        before = [(t, e) for t, e in sent.get(event_reader or 0, ())
                  if t <= at and at - t <= ATTRIBUTION_WINDOW]
        if not before:
            continue
        edition_id = max(before)[1]
        if edition_id in out:
            if kind == "unsubscribed":
                out[edition_id].unsubscribes += 1
            else:
                out[edition_id].complaints += 1


def recent_editions(session: DbSession, limit: int = 10) -> list[EditionStats]:
    ids = list(session.scalars(select(Edition.id).where(Edition.test_only.is_(False))
                               .order_by(Edition.created_at.desc(), Edition.id.desc())
                               .limit(limit)))
    return edition_stats(session, ids)


def link_stats(session: DbSession, edition_id: int) -> list[dict[str, Any]]:
    """Clicks per tracked link (and so per article) of one edition."""
    links = session.execute(
        select(EditionLink.id, EditionLink.url, EditionLink.article_id, Article.title)
        .outerjoin(Article, Article.id == EditionLink.article_id)
        .where(EditionLink.edition_id == edition_id).order_by(EditionLink.id)
    ).all()
    link = ReaderEvent.detail["link"].as_integer()
    counts = {link_id: (hits, readers) for link_id, hits, readers in session.execute(
        select(link, func.count(), func.count(func.distinct(ReaderEvent.reader_id)))
        .where(ReaderEvent.edition_id == edition_id, ReaderEvent.kind == "click")
        .group_by(link)
    )}
    return [{"id": link_id, "url": url, "article_id": article_id, "title": title or "",
             "clicks": counts.get(link_id, (0, 0))[0], "readers": counts.get(link_id, (0, 0))[1]}
            for link_id, url, article_id, title in links]


def article_stats(session: DbSession, article_id: int) -> dict[str, int]:
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
    clicks = session.scalar(
        select(func.count()).select_from(ReaderEvent)
        .where(ReaderEvent.edition_id.in_(editions), ReaderEvent.kind == "click",
               ReaderEvent.detail["link"].as_integer().in_(sorted(link_ids)))
    ) if editions else 0
    return {"editions": len(editions), "opens": opens or 0, "clicks": clicks or 0}


KIND_SERIES = {"open": "opens", "click": "clicks", "unsubscribed": "unsubscribes",
               "bounce": "bounces", "complaint": "bounces"}

# On PostgreSQL each day is an index range count (no function per row): the
# deliveries index on sent_at and the events index on (kind, created_at) answer alone.
_PG_SENDS = text("""
    SELECT (d AT TIME ZONE 'UTC')::date,
           (SELECT count(*) FROM deliveries
             WHERE sent_at >= d AND sent_at < d + interval '1 day')
    FROM generate_series(CAST(:since AS timestamptz), CAST(:last AS timestamptz), interval '1 day') d""")
_PG_EVENTS = text("""
    SELECT k, (d AT TIME ZONE 'UTC')::date,
           (SELECT count(*) FROM reader_events
             WHERE kind = k AND created_at >= d AND created_at < d + interval '1 day')
    FROM generate_series(CAST(:since AS timestamptz), CAST(:last AS timestamptz), interval '1 day') d,
         unnest(CAST(:kinds AS text[])) k""")


def activity_series(session: DbSession, days: int = 30, now: datetime | None = None
                    ) -> dict[str, list[tuple[date, int]]]:
    """Per day: sends, opens, clicks, unsubscribes, bounces (for the charts)."""
    now = now or utcnow()
    since = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)
    last = since + timedelta(days=days - 1)
    per_kind: dict[str, dict[date, int]] = {name: defaultdict(int) for name in KIND_SERIES.values()}
    if on_postgres(session):
        params = {"since": since, "last": last}
        sends = {_as_date(d): n for d, n in session.execute(_PG_SENDS, params)}
        rows = session.execute(_PG_EVENTS, {**params, "kinds": list(KIND_SERIES)})
    else:
        # sent_at is set only when a delivery is sent.
        sent_day = _day(session, Delivery.sent_at)
        sends = {_as_date(d): n for d, n in session.execute(
            select(sent_day, func.count()).where(Delivery.sent_at >= since).group_by(sent_day))}
        event_day = _day(session, ReaderEvent.created_at)
        rows = session.execute(
            select(ReaderEvent.kind, event_day, func.count())
            .where(ReaderEvent.created_at >= since, ReaderEvent.kind.in_(list(KIND_SERIES)))
            .group_by(ReaderEvent.kind, event_day))
    for kind, d, n in rows:
        per_kind[KIND_SERIES[kind]][_as_date(d)] += n
    all_days = _days(now, days)
    series = {"sends": [(d, sends.get(d, 0)) for d in all_days]}
    for name, values in per_kind.items():
        series[name] = [(d, values.get(d, 0)) for d in all_days]
    return series


def _since(now: datetime, days: int) -> datetime:
    return datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)


@dataclass
class GrowthDay:
    day: date
    gained: int  # readers confirmed that day (imports with consent included)
    lost: int  # unsubscribed, erased or complained that day

    @property
    def net(self) -> int:
        return self.gained - self.lost


LOSS_KINDS = ("unsubscribed", "erased", "complaint")


def net_growth(session: DbSession, days: int = 7, now: datetime | None = None) -> list[GrowthDay]:
    """Per day: readers gained (confirmed), lost (left, erased, complained), and the net."""
    now = now or utcnow()
    since = _since(now, days)
    confirmed_day = _day(session, Reader.confirmed_at)
    gained = {_as_date(d): n for d, n in session.execute(
        select(confirmed_day, func.count()).where(Reader.confirmed_at >= since)
        .group_by(confirmed_day))}
    event_day = _day(session, ReaderEvent.created_at)
    lost = {_as_date(d): n for d, n in session.execute(
        select(event_day, func.count())
        .where(ReaderEvent.created_at >= since, ReaderEvent.kind.in_(LOSS_KINDS))
        .group_by(event_day))}
    return [GrowthDay(d, gained.get(d, 0), lost.get(d, 0)) for d in _days(now, days)]


def clicks_per_article(session: DbSession, days: int = 7, now: datetime | None = None,
                       limit: int = 20) -> list[dict[str, Any]]:
    """The most clicked articles of the window: clicks and distinct readers."""
    now = now or utcnow()
    link = ReaderEvent.detail["link"].as_integer()
    rows = session.execute(
        select(EditionLink.article_id, Article.title, func.count(),
               func.count(func.distinct(ReaderEvent.reader_id)))
        .select_from(ReaderEvent)
        .join(EditionLink, EditionLink.id == link)
        .join(Article, Article.id == EditionLink.article_id)
        .where(ReaderEvent.kind == "click", ReaderEvent.created_at >= _since(now, days))
        .group_by(EditionLink.article_id, Article.title)
        .order_by(func.count().desc(), Article.title)
        .limit(limit)
    ).all()
    return [{"article_id": article_id, "title": title, "clicks": clicks, "readers": readers}
            for article_id, title, clicks, readers in rows]


def unsubscribe_reasons(session: DbSession, days: int = 7, now: datetime | None = None,
                        comments: int = 20) -> dict[str, Any]:
    """Why readers left in the window: a count per reason (`none` when they did not
    say) and the latest free-text comments."""
    now = now or utcnow()
    since = _since(now, days)
    reason = ReaderEvent.detail["reason"].as_string()
    counts = {str(r or "none"): n for r, n in session.execute(
        select(reason, func.count())
        .where(ReaderEvent.kind == "unsubscribed", ReaderEvent.created_at >= since)
        .group_by(reason))}
    latest = session.execute(
        select(ReaderEvent.created_at, ReaderEvent.detail)
        .where(ReaderEvent.kind == "unsubscribed", ReaderEvent.created_at >= since)
        .order_by(ReaderEvent.created_at.desc(), ReaderEvent.id.desc())
        .limit(500)
    ).all()
    texts = [{"at": at, "reason": str(detail.get("reason", "")), "comment": str(detail["comment"])}
             for at, detail in latest if isinstance(detail, dict) and detail.get("comment")]
    return {"counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "total": sum(counts.values()), "comments": texts[:comments]}
