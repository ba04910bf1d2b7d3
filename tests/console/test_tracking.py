"""Open and click tracking through real compiled, sent messages."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email import policy

from sqlalchemy import func, select, update

from mailer.common import tokens
from mailer.console import stats
from mailer.editions import tracking
from mailer.models import Delivery, EditionLink, Reader, ReaderEvent, utcnow
from tests.console.world import build_world, send_edition
from tests.support import factories

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156 Safari/537.36"}


def html_of(data: bytes, rcpt: str = "") -> str:
    msg = email.message_from_bytes(data, policy=policy.default)
    return msg.get_body(("html",)).get_content()


def message_to(sender, address: str) -> str:  # type: ignore[no-untyped-def]
    return next(html_of(d) for _, rcpt, d in sender.messages if rcpt == address)


def paths(html: str, kind: str) -> list[str]:
    return re.findall(rf'http://mailer\.test(/t/{kind}/[^"]+)"', html)


def test_links_are_rewritten_to_stored_link_ids_and_personal_tokens(session, rt, sender):
    world = build_world(session, rt, tracking=True)
    ada, bob = message_to(sender, "ada@example.org"), message_to(sender, "bob@example.org")
    ada_clicks, bob_clicks = paths(ada, "c"), paths(bob, "c")
    assert ada_clicks and len(ada_clicks) == len(bob_clicks) and ada_clicks != bob_clicks
    assert len(paths(ada, "o")) == 1
    # Unsubscribe and preference links stay direct; the article links are gone.
    assert "http://mailer.test/unsubscribe/" in ada and "news.example.org/a/" not in ada
    links = {link.id: link for link in session.scalars(select(EditionLink))}
    assert set(links) == set(world.link_ids)
    article_links = [lk for lk in links.values() if lk.article_id]
    assert {lk.article_id for lk in article_links} >= {world.article_id}


def test_open_pixel_counts_people_not_scanners(client, session, rt, sender):
    world = build_world(session, rt, tracking=True)
    session.execute(ReaderEvent.__table__.delete())  # the world's hand-made open
    # Sent a minute ago: an open within seconds of delivery would be a machine's.
    session.execute(update(Delivery).values(sent_at=utcnow() - timedelta(minutes=1)))
    session.commit()
    pixel = paths(message_to(sender, "bob@example.org"), "o")[0]
    assert client.head(pixel, headers=BROWSER).status_code == 200
    assert client.get(pixel, headers={**BROWSER, "Sec-Purpose": "prefetch"}).status_code == 200
    assert client.get(pixel, headers={"User-Agent": "Mimecast Security Scanner"}).status_code == 200
    assert client.get(pixel, headers={"User-Agent": "python-requests/2.31"}).status_code == 200
    r = client.get(pixel, headers=BROWSER)
    assert r.status_code == 200 and r.mimetype == "image/gif" and "no-store" in r.headers["Cache-Control"]
    client.get(pixel, headers=BROWSER)  # a second open by the same reader
    kinds = dict(session.execute(select(ReaderEvent.kind, func.count()).group_by(ReaderEvent.kind)).all())
    assert kinds == {"open": 1, "open-filtered": 4}
    figures = stats.edition_stats(session, [world.edition_id])[0]
    assert (figures.sent, figures.opens, figures.filtered, figures.open_rate) == (2, 1, 4, 50.0)
    # A forged pixel still answers with the image, and counts nothing.
    assert client.get(pixel[:-8] + "0" * 4 + ".gif", headers=BROWSER).status_code == 200
    assert session.scalar(select(func.count()).select_from(ReaderEvent)) == 5


def test_click_redirects_to_the_stored_url_and_counts_once_per_hit(client, session, rt, sender):
    world = build_world(session, rt, tracking=True)
    link_path = paths(message_to(sender, "ada@example.org"), "c")[0]
    link_id = int(link_path.split("/")[-1].split(".")[1])
    stored = session.get(EditionLink, link_id).url
    r = client.get(link_path, headers=BROWSER)
    assert r.status_code == 302 and r.headers["Location"] == stored
    assert client.get(link_path + "?url=https://evil.example", headers=BROWSER).headers["Location"] == stored
    # A security gateway right after delivery: redirected, not counted.
    r = client.get(link_path, headers={"User-Agent": "Barracuda Sentinel (EE)"})
    assert r.status_code == 302
    clicks = session.scalars(select(ReaderEvent).where(ReaderEvent.kind.like("click%"))).all()
    assert sorted(e.kind for e in clicks) == ["click", "click", "click-filtered"]
    figures = stats.edition_stats(session, [world.edition_id])[0]
    assert (figures.clicks, figures.click_total) == (1, 2)
    per_link = {row["id"]: row for row in stats.link_stats(session, world.edition_id)}
    assert per_link[link_id]["clicks"] == 2 and per_link[link_id]["readers"] == 1


def _nonce(session, reader_id: int) -> str:  # type: ignore[no-untyped-def]
    return session.get(Reader, reader_id).token_nonce  # type: ignore[no-any-return]


def test_scanner_agent_counts_after_the_window(session, rt, sender):
    build_world(session, rt, tracking=True)
    delivery = session.scalars(select(Delivery)).first()
    secret = rt.settings.secret_key
    nonce = _nonce(session, delivery.reader_id)
    value = tokens.track_value(secret, delivery.edition_id, delivery.reader_id, nonce)
    token = f"{delivery.edition_id}.{value}"
    agent = {"User-Agent": "Microsoft Office/16.0"}
    late = delivery.sent_at + tracking.SCANNER_WINDOW + timedelta(seconds=1)
    assert tracking.record_open(session, secret, token, method="GET", headers=agent,
                                now=delivery.sent_at + timedelta(seconds=3)) == "filtered"
    assert tracking.record_open(session, secret, token, method="GET", headers=agent, now=late) in (
        "counted", "repeat")


def test_archive_copy_links_still_lead_to_the_article(client, session, rt, sender):
    world = build_world(session, rt, tracking=True)
    page = client.get(f"/archive/{world.edition_id}/email").get_data(as_text=True)
    # the masthead's link to the site is tracked too: find a story's link
    locations = []
    for link_path in paths(page, "c"):
        assert re.fullmatch(r"/t/c/\d+\.\d+\.", link_path)
        r = client.get(link_path, headers=BROWSER)
        assert r.status_code == 302
        locations.append(r.headers["Location"])
    assert any(url.startswith("https://news.example.org/") for url in locations)
    assert session.scalar(select(func.count()).select_from(ReaderEvent).where(ReaderEvent.kind == "click")) == 0


def test_tracking_is_off_by_default(session, rt, sender):
    topic = factories.topic(session)
    factories.article(session, topics=[topic])
    digest = factories.digest(session, topics=[topic])
    factories.reader(session, "carol@example.org", topics=[topic])
    send_edition(session, rt, digest.id)
    html = message_to(sender, "carol@example.org")
    assert "/t/c/" not in html and "/t/o/" not in html
    assert "https://news.example.org/a/" in html


def test_unsubscribe_after_an_edition_is_attributed_to_it(client, session, rt, sender):
    world = build_world(session, rt, tracking=False)
    from mailer.readers import subscriptions

    subscriptions.unsubscribe(session, world.reader_id, source="page")
    event = session.scalar(select(ReaderEvent).where(ReaderEvent.kind == "unsubscribed"))
    event.created_at = utcnow() + timedelta(minutes=5)
    session.commit()
    figures = stats.edition_stats(session, [world.edition_id])[0]
    assert figures.unsubscribes == 1 and figures.unsubscribe_rate == 50.0


def test_activity_series_per_day(session, rt, sender):
    build_world(session, rt, tracking=True)
    series = stats.activity_series(session, days=7)
    assert series["sends"][-1][1] == 2 and series["opens"][-1][1] == 1
    assert set(series) == {"sends", "opens", "clicks", "unsubscribes", "bounces"}
