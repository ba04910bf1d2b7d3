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


def _sent(session: DbSession, edition_id: int) -> int:
    return int(session.scalar(
        select(func.count()).select_from(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.SENT)) or 0)


def edition_engagement(session: DbSession, edition_id: int, sent: int | None = None) -> Engagement:
    """Opens, clicks and clicks per article of one edition, in four indexed queries."""
    sent = _sent(session, edition_id) if sent is None else sent
    tracked = session.scalar(
        select(EditionLink.id).where(EditionLink.edition_id == edition_id).limit(1)) is not None
    out = Engagement(tracked=tracked, sent=sent)
    if not tracked:
        return out
    machine = ReaderEvent.kind.in_(MACHINE_OPEN_KINDS)
    opens = session.execute(
        select(machine, func.count(func.distinct(ReaderEvent.reader_id)))
        .where(ReaderEvent.edition_id == edition_id,
               ReaderEvent.kind.in_((OPEN_HUMAN, *MACHINE_OPEN_KINDS)))
        .group_by(machine)).all()
    for is_machine, readers in opens:
        if is_machine:
            out.opens_machine = int(readers)
        else:
            out.opens_human = int(readers)
    total, readers = session.execute(
        select(func.count(), func.count(func.distinct(ReaderEvent.reader_id)))
        .where(ReaderEvent.edition_id == edition_id, ReaderEvent.kind == CLICK)).one()
    out.click_total, out.clicks = int(total or 0), int(readers or 0)
    out.open_rate, out.click_rate = _rate(out.opens_human, sent), _rate(out.clicks, sent)
    out.articles, out.other_links = _per_article(session, edition_id, sent)
    return out


def _per_article(session: DbSession, edition_id: int, sent: int
                 ) -> tuple[list[ArticleClicks], OtherLinks]:
    """Every article the edition carried (clicked or not), most clicked first; links
    that are no article (masthead, site, sponsors) together as "other links"."""
    edition = session.get(Edition, edition_id)
    carried = set(edition.article_ids or []) - set(edition.dropped_ids or []) if edition else set()
    links = session.execute(
        select(EditionLink.id, EditionLink.article_id).where(EditionLink.edition_id == edition_id)
    ).all()
    carried |= {article_id for _, article_id in links if article_id is not None}
    other = OtherLinks(links=sum(1 for _, article_id in links if article_id is None))
    link_id = ReaderEvent.detail["link"].as_integer()
    counts: dict[int | None, tuple[int, int]] = {}
    for article_id, total, readers in session.execute(
        select(EditionLink.article_id, func.count(), func.count(func.distinct(ReaderEvent.reader_id)))
        .select_from(ReaderEvent)
        .join(EditionLink, (EditionLink.id == link_id) & (EditionLink.edition_id == edition_id))
        .where(ReaderEvent.edition_id == edition_id, ReaderEvent.kind == CLICK)
        .group_by(EditionLink.article_id)
    ):
        counts[article_id] = (int(total), int(readers))
    titles = dict(session.execute(
        select(Article.id, Article.title).where(Article.id.in_(sorted(carried)))).all()
    ) if carried else {}
    articles = []
    for article_id in carried:
        total, readers = counts.get(article_id, (0, 0))
        articles.append(ArticleClicks(article_id, titles.get(article_id, "(deleted article)"),
                                      readers, total, _rate(readers, sent)))
    articles.sort(key=lambda a: (-a.clicks, -a.click_total, a.title.lower(), a.article_id))
    other.click_total, other.clicks = counts.get(None, (0, 0))
    other.click_rate = _rate(other.clicks, sent)
    return articles, other
