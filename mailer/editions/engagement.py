"""Engagement figures of an edition: human and machine opens, clicks, clicks per article.

Rates are over messages sent and use human opens only (`open` events); machine opens
(Apple Mail Privacy Protection, opens on delivery, scanners) are counted apart and
shown as such. Every figure is a distinct-reader count unless it says `total`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from mailer.editions.tracking import MACHINE_OPEN_KINDS, OPEN_HUMAN
from mailer.models import Article, Delivery, DeliveryStatus, Edition, EditionLink, ReaderEvent
from mailer.models.base import DbSession

CLICK = "click"


def _rate(count: int, sent: int) -> float:
    return round(100.0 * count / sent, 1) if sent else 0.0


@dataclass
class ArticleClicks:
    article_id: int
    title: str
    clicks: int = 0  # distinct readers
    click_total: int = 0
    click_rate: float = 0.0


@dataclass
class OtherLinks:
    links: int = 0
    clicks: int = 0  # distinct readers
    click_total: int = 0
    click_rate: float = 0.0


@dataclass
class Engagement:
    tracked: bool
    sent: int
    opens_human: int = 0
    opens_machine: int = 0  # readers with a machine open (they may have opened as people too)
    clicks: int = 0  # distinct readers
    click_total: int = 0
    open_rate: float = 0.0
    click_rate: float = 0.0
    articles: list[ArticleClicks] = field(default_factory=list)
    other_links: OtherLinks = field(default_factory=OtherLinks)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sent(session: DbSession, edition_ids: list[int]) -> dict[int, int]:
    return {edition_id: int(count) for edition_id, count in session.execute(
        select(Delivery.edition_id, func.count())
        .where(Delivery.edition_id.in_(edition_ids), Delivery.status == DeliveryStatus.SENT)
        .group_by(Delivery.edition_id))}


def edition_engagement(session: DbSession, edition_id: int, sent: int | None = None) -> Engagement:
    """Opens, clicks and clicks per article of one edition."""
    return editions_engagement(session, [edition_id],
                               None if sent is None else {edition_id: sent})[edition_id]


def editions_engagement(session: DbSession, edition_ids: list[int],
                        sent: dict[int, int] | None = None) -> dict[int, Engagement]:
    """The same for a page of editions, in six grouped queries whatever its size."""
    ids = sorted(set(edition_ids))
    sent = sent if sent is not None else _sent(session, ids)
    tracked = set(session.scalars(
        select(EditionLink.edition_id).where(EditionLink.edition_id.in_(ids)).distinct()))
    out = {i: Engagement(tracked=i in tracked, sent=sent.get(i, 0)) for i in ids}
    live = sorted(tracked)
    if not live:
        return out
    machine = ReaderEvent.kind.in_(MACHINE_OPEN_KINDS)
    for edition_id, is_machine, readers in session.execute(
        select(ReaderEvent.edition_id, machine, func.count(func.distinct(ReaderEvent.reader_id)))
        .where(ReaderEvent.edition_id.in_(live),
               ReaderEvent.kind.in_((OPEN_HUMAN, *MACHINE_OPEN_KINDS)))
        .group_by(ReaderEvent.edition_id, machine)
    ):
        if is_machine:
            out[edition_id or 0].opens_machine = int(readers)
        else:
            out[edition_id or 0].opens_human = int(readers)
    for edition_id, total, readers in session.execute(
        select(ReaderEvent.edition_id, func.count(), func.count(func.distinct(ReaderEvent.reader_id)))
        .where(ReaderEvent.edition_id.in_(live), ReaderEvent.kind == CLICK)
        .group_by(ReaderEvent.edition_id)
    ):
        out[edition_id or 0].click_total, out[edition_id or 0].clicks = int(total), int(readers)
    for e in out.values():
        e.open_rate, e.click_rate = _rate(e.opens_human, e.sent), _rate(e.clicks, e.sent)
    _per_article(session, live, out)
    return out


def with_engagement(session: DbSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Progress rows (`progress`, `list_editions`) with their engagement figures at the
    top level; only `tracked: false` when the edition was sent without tracking
    (opens and clicks unknown, not zero)."""
    figures = editions_engagement(session, [r["id"] for r in rows], {r["id"]: r["sent"] for r in rows})
    out = []
    for row in rows:
        engagement = figures[row["id"]]
        values = engagement.as_dict()
        values.pop("sent")
        out.append({**row, **(values if engagement.tracked else {"tracked": False})})
    return out


def _per_article(session: DbSession, edition_ids: list[int], out: dict[int, Engagement]) -> None:
    """Every article an edition carried (clicked or not), most clicked first; links
    that are no article (masthead, site, sponsors) together as "other links"."""
    carried: dict[int, set[int]] = {i: set() for i in edition_ids}
    for edition_id, article_ids, dropped in session.execute(
        select(Edition.id, Edition.article_ids, Edition.dropped_ids).where(Edition.id.in_(edition_ids))
    ):
        carried[edition_id] |= set(article_ids or []) - set(dropped or [])
    for edition_id, article_id in session.execute(
        select(EditionLink.edition_id, EditionLink.article_id).where(EditionLink.edition_id.in_(edition_ids))
    ):
        if article_id is None:
            out[edition_id].other_links.links += 1
        else:
            carried[edition_id].add(article_id)
    link_id = ReaderEvent.detail["link"].as_integer()
    counts: dict[tuple[int, int | None], tuple[int, int]] = {}
    for event_edition, article_id, total, readers in session.execute(
        select(ReaderEvent.edition_id, EditionLink.article_id, func.count(),
               func.count(func.distinct(ReaderEvent.reader_id)))
        .select_from(ReaderEvent)
        .join(EditionLink, (EditionLink.id == link_id)
              & (EditionLink.edition_id == ReaderEvent.edition_id))
        .where(ReaderEvent.edition_id.in_(edition_ids), ReaderEvent.kind == CLICK)
        .group_by(ReaderEvent.edition_id, EditionLink.article_id)
    ):
        counts[(event_edition or 0, article_id)] = (int(total), int(readers))
    every = sorted(set().union(*carried.values()))
    titles = dict(session.execute(
        select(Article.id, Article.title).where(Article.id.in_(every))).all()) if every else {}
    for edition_id, articles in carried.items():
        e = out[edition_id]
        rows = []
        for article_id in articles:
            total, readers = counts.get((edition_id, article_id), (0, 0))
            rows.append(ArticleClicks(article_id, titles.get(article_id, "(deleted article)"),
                                      readers, total, _rate(readers, e.sent)))
        rows.sort(key=lambda a: (-a.clicks, -a.click_total, a.title.lower(), a.article_id))
        e.articles = rows
        e.other_links.click_total, e.other_links.clicks = counts.get((edition_id, None), (0, 0))
        e.other_links.click_rate = _rate(e.other_links.clicks, e.sent)
