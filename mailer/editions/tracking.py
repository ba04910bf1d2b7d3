"""Open and click tracking (opt-in with MAILER_TRACKING=1).

At compile time `rewrite_links` registers every literal http(s) link of an
edition's HTML as an EditionLink row and points the href at
`/t/c/<edition>.<link>.%%track%%`; an open pixel `/t/o/<edition>.%%track%%.gif`
is added. `%%track%%` is filled per reader with `<reader>.<mac>`, where the mac
signs (edition, reader): one HMAC per message keeps fills in microseconds. The
link id is bound to its edition by the database, so a click can only ever
redirect to a URL stored for that edition, never to one taken from the request.

Hits from prefetchers and link scanners are kept apart (kinds `open-filtered`,
`click-filtered`) so they never count as readers' opens and clicks.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import exists, select

from mailer.common.tokens import parse_click, parse_open
from mailer.models import Article, Delivery, EditionLink, ReaderEvent, utcnow
from mailer.models.base import DbSession
from mailer.readers import nonce_lookup

TRACK_FIELD = "track"
PLACEHOLDER = f"%%{TRACK_FIELD}%%"
# Security gateways fetch every link of a fresh message within minutes of delivery.
SCANNER_WINDOW = timedelta(minutes=5)
SCANNER_AGENTS = (
    "barracuda", "mimecast", "proofpoint", "symantec", "messagelabs", "trend micro",
    "forcepoint", "fortinet", "sophos", "cisco", "ironport", "safelinks", "microsoft office",
    "ms-office", "skypeuripreview", "zscaler", "paloalto", "checkpoint", "avanan",
)
# Automated clients whatever the time.
BOT_AGENTS = ("bot", "crawler", "spider", "preview", "python-requests", "python-urllib",
              "curl/", "wget/", "go-http-client", "headlesschrome", "facebookexternalhit",
              "slurp", "scanner")
PREFETCH_HEADERS = ("Purpose", "Sec-Purpose", "X-Purpose", "X-Moz")

_HREF_RE = re.compile(r'href="([^"]*)"', re.IGNORECASE)
def rewrite_links(html_text: str, edition_id: int, session: DbSession, base_url: str) -> str:
    """Register the edition's links and point them at the click endpoint; add the
    open pixel. Links holding reader placeholders (unsubscribe, preferences) and
    non-http links stay as they are. Flushes, does not commit."""
    urls: list[str] = []
    for match in _HREF_RE.finditer(html_text):
        url = html.unescape(match.group(1)).strip()
        if url.startswith(("http://", "https://")) and "%%" not in url and len(url) <= 2000:
            urls.append(url)
    links = {link.url: link for link in session.scalars(
        select(EditionLink).where(EditionLink.edition_id == edition_id))}
    new = [u for u in dict.fromkeys(urls) if u not in links]
    if new:
        articles = dict(session.execute(select(Article.url, Article.id).where(Article.url.in_(new))).all())
        for url in new:
            link = EditionLink(edition_id=edition_id, url=url, article_id=articles.get(url))
            session.add(link)
            links[url] = link
        session.flush()

    def replace(match: re.Match[str]) -> str:
        url = html.unescape(match.group(1)).strip()
        link = links.get(url)
        if link is None:
            return match.group(0)
        return f'href="{base_url}/t/c/{edition_id}.{link.id}.{PLACEHOLDER}"'

    out = _HREF_RE.sub(replace, html_text)
    pixel = (f'<img src="{base_url}/t/o/{edition_id}.{PLACEHOLDER}.gif" width="1" height="1" '
             'alt="" style="display:block;border:0;width:1px;height:1px" />')
    index = out.lower().rfind("</body>")
    return out[:index] + pixel + out[index:] if index >= 0 else out + pixel


def track_variants(session: DbSession, edition_id: int, base_url: str) -> None:
    """Rewrite the HTML of every compiled variant of an edition (links shared by
    variants get one EditionLink each). Called once while the edition is prepared."""
    from mailer.models import EditionVariant

    for variant in session.scalars(select(EditionVariant).where(EditionVariant.edition_id == edition_id)):
        if f"/t/o/{edition_id}." not in variant.html:  # idempotent
            variant.html = rewrite_links(variant.html, edition_id, session, base_url)
    session.flush()


def scanner_reason(method: str, headers: Mapping[str, str], sent_at: datetime | None,
                   now: datetime) -> str:
    """Why a hit looks automated ('' when it looks like a person)."""
    if method.upper() == "HEAD":
        return "head"
    for name in PREFETCH_HEADERS:
        value = headers.get(name, "").lower()
        if "prefetch" in value or "preview" in value or "prerender" in value:
            return "prefetch"
    agent = headers.get("User-Agent", "").lower()
    if not agent:
        return "no-user-agent"
    if any(word in agent for word in BOT_AGENTS):
        return "bot"
    if any(word in agent for word in SCANNER_AGENTS) and (
        sent_at is None or now - sent_at <= SCANNER_WINDOW
    ):
        return "scanner"
    return ""


def _sent_at(session: DbSession, edition_id: int, reader_id: int) -> tuple[bool, datetime | None]:
    row = session.execute(
        select(Delivery.sent_at).where(Delivery.edition_id == edition_id,
                                       Delivery.reader_id == reader_id)
    ).first()
    return (row is not None, row[0] if row else None)


def record_open(session: DbSession, secret: str, token: str, *, method: str,
                headers: Mapping[str, str], now: datetime | None = None) -> str:
    """Count an open (the first per reader and edition). Returns what happened."""
    parsed = parse_open(secret, token, nonce_lookup(session))
    if parsed is None or not parsed.signed:
        return "invalid"
    now = now or utcnow()
    delivered, sent_at = _sent_at(session, parsed.edition_id, parsed.reader_id)
    if not delivered:
        return "invalid"
    reason = scanner_reason(method, headers, sent_at, now)
    if reason:
        session.add(ReaderEvent(reader_id=parsed.reader_id, edition_id=parsed.edition_id,
                                kind="open-filtered", detail={"reason": reason}, created_at=now))
        session.commit()
        return "filtered"
    seen = session.scalar(select(exists().where(
        ReaderEvent.edition_id == parsed.edition_id, ReaderEvent.reader_id == parsed.reader_id,
        ReaderEvent.kind == "open")))
    if not seen:
        session.add(ReaderEvent(reader_id=parsed.reader_id, edition_id=parsed.edition_id,
                                kind="open", detail={}, created_at=now))
        session.commit()
        return "counted"
    return "repeat"


def resolve_click(session: DbSession, secret: str, token: str, *, method: str,
                  headers: Mapping[str, str], now: datetime | None = None) -> str | None:
    """The stored URL to redirect to, or None (unknown token or link). Counts the
    click when the token is signed and the hit does not look automated."""
    parsed = parse_click(secret, token, nonce_lookup(session))
    if parsed is None:
        return None
    link = session.get(EditionLink, parsed.link_id)
    if link is None or link.edition_id != parsed.edition_id:
        return None
    url = link.url
    if not parsed.signed:
        return url  # a mangled forward: still the edition's own link, just not counted
    now = now or utcnow()
    delivered, sent_at = _sent_at(session, parsed.edition_id, parsed.reader_id)
    if delivered:
        reason = scanner_reason(method, headers, sent_at, now)
        kind = "click-filtered" if reason else "click"
        detail: dict[str, object] = {"link": link.id, "article": link.article_id}
        if reason:
            detail["reason"] = reason
        session.add(ReaderEvent(reader_id=parsed.reader_id, edition_id=parsed.edition_id,
                                kind=kind, detail=detail, created_at=now))
        session.commit()
    return url
