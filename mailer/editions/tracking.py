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

Opens are classified human (`open`) or machine (`open-machine`): Apple Mail
Privacy Protection fetches every image of every message on delivery, whether or
not anyone reads it, so those fetches say nothing about a reader. A machine open
is recorded (with its reason), shown as "machine opens", and left out of every
rate and of the segment and inactivity rules; only `open` counts as a person.
"""

from __future__ import annotations

import functools
import html
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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

# --- machine opens: the one place that says what they look like ------------------

OPEN_HUMAN = "open"
OPEN_MACHINE = "open-machine"
OPEN_FILTERED = "open-filtered"  # scanners and bots (scanner_reason)
MACHINE_OPEN_KINDS = (OPEN_MACHINE, OPEN_FILTERED)
# A fetch this soon after the message was sent was made on delivery, not by a reader
# (MAILER_MACHINE_OPEN_SECONDS).
MACHINE_OPEN_SECONDS = 10.0


@dataclass(frozen=True)
class ProxyAgent:
    marker: str  # matched in the lower-cased User-Agent
    reason: str
    machine: bool  # False: a reader's open, fetched through the provider's proxy


PROXY_AGENTS = (
    # Gmail and Yahoo fetch images through their proxies when the reader opens the
    # message (and cache them, so later opens are not seen). The proxy hides the
    # reader's client, not the reader: counted as a person, unless it comes within
    # MACHINE_OPEN_SECONDS of delivery (a prefetch), which the timing rule catches.
    ProxyAgent("googleimageproxy", "google-image-proxy", machine=False),
    ProxyAgent("yahoomailproxy", "yahoo-mail-proxy", machine=False),
)
# Apple Mail Privacy Protection fetches with the bare "Mozilla/5.0" and no
# platform or browser token; Apple Mail itself sends "Mozilla/5.0 (Macintosh; …)
# AppleWebKit/… (KHTML, like Gecko)", so only the bare form is Apple's proxy.
BARE_AGENTS = frozenset({"mozilla/5.0"})
# Address ranges whose image fetches are Apple's proxies:
# - 17.0.0.0/8 and 2620:149::/32 are Apple's own networks (ARIN registrations);
#   MPP prefetches come from Apple egress there, and no reader browses from them.
# iCloud Private Relay egress addresses (Apple's published egress-ip-ranges.csv)
# are shared with real readers using Safari over Relay and change weekly: they are
# not built in. An operator who wants them adds CIDRs to MAILER_MACHINE_OPEN_NETWORKS.
MACHINE_NETWORKS = ("17.0.0.0/8", "2620:149::/32")


@functools.lru_cache(maxsize=8)
def _networks(extra: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in (*MACHINE_NETWORKS, *extra))


def _in_networks(address: str, extra: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in _networks(tuple(extra)))


@dataclass(frozen=True)
class OpenClass:
    machine: bool
    reason: str  # why it is a machine open; for a person: "" or the proxy it came through


def classify_open(headers: Mapping[str, str], remote_addr: str, sent_at: datetime | None,
                  now: datetime, *, machine_seconds: float = MACHINE_OPEN_SECONDS,
                  extra_networks: Iterable[str] = ()) -> OpenClass:
    """Human or machine, for a pixel hit that is not a scanner's (see scanner_reason)."""
    agent = " ".join(headers.get("User-Agent", "").split()).lower()
    if agent in BARE_AGENTS:
        return OpenClass(True, "apple-mpp-agent")
    if remote_addr and _in_networks(remote_addr, extra_networks):
        return OpenClass(True, "proxy-address")
    proxy = next((p for p in PROXY_AGENTS if p.marker in agent), None)
    if proxy is not None and proxy.machine:
        return OpenClass(True, proxy.reason)
    if sent_at is not None and (now - sent_at).total_seconds() < machine_seconds:
        return OpenClass(True, "too-soon")
    return OpenClass(False, proxy.reason if proxy is not None else "")

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
                headers: Mapping[str, str], now: datetime | None = None,
                remote_addr: str = "", machine_seconds: float = MACHINE_OPEN_SECONDS,
                extra_networks: Iterable[str] = ()) -> str:
    """Record an open: the first human and the first machine open per reader and
    edition (scanner hits each). Returns "counted", "machine", "filtered", "repeat"
    or "invalid"."""
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
                                kind=OPEN_FILTERED, detail={"reason": reason}, created_at=now))
        session.commit()
        return "filtered"
    found = classify_open(headers, remote_addr, sent_at, now, machine_seconds=machine_seconds,
                          extra_networks=extra_networks)
    kind = OPEN_MACHINE if found.machine else OPEN_HUMAN
    # One probe of ix_reader_events_first_open.
    seen = session.scalar(select(exists().where(
        ReaderEvent.edition_id == parsed.edition_id, ReaderEvent.reader_id == parsed.reader_id,
        ReaderEvent.kind == kind)))
    if seen:
        return "repeat"
    detail: dict[str, object] = {"reason": found.reason} if found.reason else {}
    session.add(ReaderEvent(reader_id=parsed.reader_id, edition_id=parsed.edition_id,
                            kind=kind, detail=detail, created_at=now))
    session.commit()
    return "machine" if found.machine else "counted"


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
