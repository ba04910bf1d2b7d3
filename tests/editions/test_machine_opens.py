"""Machine opens: what is classified how (user agent, address, timing), and the
pixel endpoint recording each open with its kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from mailer.common import tokens
from mailer.editions import tracking
from mailer.models import Delivery, ReaderEvent, utcnow
from tests.console.world import build_world

SENT = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
LATER = SENT + timedelta(minutes=30)
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
APPLE_MAIL = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
IPHONE_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"


@pytest.mark.parametrize(("agent", "address", "now", "machine", "reason"), [
    # user agents
    (CHROME, "203.0.113.7", LATER, False, ""),
    (APPLE_MAIL, "203.0.113.7", LATER, False, ""),  # Apple Mail itself: a person
    (IPHONE_MAIL, "198.51.100.20", LATER, False, ""),
    ("Mozilla/5.0", "203.0.113.7", LATER, True, "apple-mpp-agent"),  # MPP's bare agent
    ("  Mozilla/5.0 ", "203.0.113.7", LATER, True, "apple-mpp-agent"),
    # Gmail and Yahoo fetch through their proxies when the reader opens the message
    (GMAIL, "66.249.84.1", LATER, False, "google-image-proxy"),
    (YAHOO, "98.137.1.1", LATER, False, "yahoo-mail-proxy"),
    (GMAIL, "66.249.84.1", SENT + timedelta(seconds=2), True, "too-soon"),  # a prefetch
    # addresses: Apple's own networks, IPv4, IPv6 and IPv4-mapped
    (APPLE_MAIL, "17.58.101.2", LATER, True, "proxy-address"),
    (CHROME, "2620:149:a44:1000::1", LATER, True, "proxy-address"),
    (CHROME, "::ffff:17.1.2.3", LATER, True, "proxy-address"),
    (CHROME, "18.0.0.1", LATER, False, ""),
    (CHROME, "not an address", LATER, False, ""),
    # timing: within MACHINE_OPEN_SECONDS of delivery is a machine's, whoever it claims to be
    (CHROME, "203.0.113.7", SENT + timedelta(seconds=3), True, "too-soon"),
    (CHROME, "203.0.113.7", SENT + timedelta(seconds=9.9), True, "too-soon"),
    (CHROME, "203.0.113.7", SENT + timedelta(seconds=10), False, ""),
])
def test_classification_table(agent, address, now, machine, reason):  # type: ignore[no-untyped-def]
    found = tracking.classify_open({"User-Agent": agent}, address, SENT, now)
    assert (found.machine, found.reason) == (machine, reason)


def test_settings_change_the_window_and_add_networks():
    soon = SENT + timedelta(seconds=20)
    assert not tracking.classify_open({"User-Agent": CHROME}, "", SENT, soon).machine
    assert tracking.classify_open({"User-Agent": CHROME}, "", SENT, soon, machine_seconds=60).machine
    relay = tracking.classify_open({"User-Agent": CHROME}, "172.225.10.1", SENT, LATER,
                                   extra_networks=("172.225.0.0/16",))
    assert (relay.machine, relay.reason) == (True, "proxy-address")
    # unknown send time: no timing rule
    assert not tracking.classify_open({"User-Agent": CHROME}, "", None, SENT).machine


def _token(session, rt) -> tuple[str, Delivery]:  # type: ignore[no-untyped-def]
    from mailer.models import Reader

    delivery = session.scalars(select(Delivery).order_by(Delivery.id)).first()
    nonce = session.get(Reader, delivery.reader_id).token_nonce
    value = tokens.track_value(rt.settings.secret_key, delivery.edition_id, delivery.reader_id, nonce)
    return f"{delivery.edition_id}.{value}", delivery


def _kinds(session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return dict(session.execute(select(ReaderEvent.kind, func.count())
                                .where(ReaderEvent.kind.like("open%")).group_by(ReaderEvent.kind)).all())


def test_pixel_records_machine_and_human_opens_apart(client, session, rt, sender):
    build_world(session, rt, tracking=True)
    session.execute(ReaderEvent.__table__.delete())
    session.commit()
    token, delivery = _token(session, rt)
    pixel = f"/t/o/{token}.gif"
    # Right after delivery: Apple's proxy, then a browser-looking prefetch.
    assert client.get(pixel, headers={"User-Agent": "Mozilla/5.0"}).status_code == 200
    assert client.get(pixel, headers={"User-Agent": CHROME}).status_code == 200
    assert _kinds(session) == {"open-machine": 1}  # the first machine open only
    event = session.scalars(select(ReaderEvent).where(ReaderEvent.kind == "open-machine")).one()
    assert event.detail == {"reason": "apple-mpp-agent"}
    # From Apple's network, later: still a machine (never a person's open).
    later = delivery.sent_at + timedelta(minutes=5)
    secret = rt.settings.secret_key
    assert tracking.record_open(session, secret, token, method="GET", headers={"User-Agent": CHROME},
                                remote_addr="17.100.1.1", now=later) == "repeat"
    # A person, later: counted once.
    assert tracking.record_open(session, secret, token, method="GET", headers={"User-Agent": CHROME},
                                remote_addr="203.0.113.9", now=later) == "counted"
    assert tracking.record_open(session, secret, token, method="GET", headers={"User-Agent": CHROME},
                                remote_addr="203.0.113.9", now=later) == "repeat"
    assert _kinds(session) == {"open-machine": 1, "open": 1}


def test_pixel_uses_the_client_address_and_the_settings(client, session, rt, sender, settings_override):
    build_world(session, rt, tracking=True)
    session.execute(ReaderEvent.__table__.delete())
    session.execute(update(Delivery).values(sent_at=utcnow() - timedelta(minutes=1)))
    session.commit()
    token, _ = _token(session, rt)
    # the test client comes from 127.0.0.1: listed as a proxy network here
    settings_override(machine_open_networks=("127.0.0.0/8",))
    client.get(f"/t/o/{token}.gif", headers={"User-Agent": CHROME})
    assert _kinds(session) == {"open-machine": 1}
    settings_override(machine_open_networks=(), machine_open_seconds=3600.0)
    session.execute(ReaderEvent.__table__.delete())
    session.commit()
    client.get(f"/t/o/{token}.gif", headers={"User-Agent": CHROME})
    assert session.scalars(select(ReaderEvent.detail).where(ReaderEvent.kind == "open-machine")
                           ).one() == {"reason": "too-soon"}


def test_bad_network_setting_stops_the_start(monkeypatch):
    from mailer.config import load_settings

    monkeypatch.setenv("MAILER_MACHINE_OPEN_NETWORKS", "17.0.0.0/8, not-a-net")
    with pytest.raises(SystemExit, match="MAILER_MACHINE_OPEN_NETWORKS"):
        load_settings()
