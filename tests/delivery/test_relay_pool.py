"""Several relays (`MAILER_SMTP_URL` with commas): spread by weight, a relay that
dies is taken out and health-checked back in. Two real aiosmtpd servers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from mailer.mail.senders import Outcome, RelayPool, Result, make_sender, parse_relays
from mailer.models import Delivery, Reader
from tests.delivery.conftest import lane, planned_edition
from tests.support.smtp import SmtpServer

BODY = b"Subject: hi\r\n\r\nhello\r\n"


def test_url_list_parses_weights_and_caps_and_single_url_stays_plain(tmp_path):
    relays = parse_relays("smtp://a.test:25?weight=3&max_connections=4, smtps://u:p@b.test")
    assert [(r.host, r.port, r.weight, r.max_connections, r.implicit_tls) for r in relays] == [
        ("a.test", 25, 3, 4, False), ("b.test", 465, 1, 0, True)]
    assert type(make_sender("smtp://a.test:2525", tmp_path)).__name__ == "SmtpSender"
    assert isinstance(make_sender("smtp://a.test,smtp://b.test", tmp_path), RelayPool)
    for bad in ("smtp://a.test?weight=x", "smtp://a.test?weight=0", "http://a.test"):
        try:
            parse_relays(bad)
        except ValueError as exc:
            assert str(exc)
        else:
            raise AssertionError(bad)


def test_messages_spread_by_weight():
    with SmtpServer() as a, SmtpServer() as b:
        pool = RelayPool(parse_relays(f"{a.url}?weight=3,{b.url}?weight=1"))
        for n in range(40):
            assert pool.send("news@mailer.test", f"r{n}@example.org", BODY).sent
        pool.close()
        assert (len(a.handler.messages), len(b.handler.messages)) == (30, 10)


def test_dead_relay_is_taken_out_then_health_checked_back_in():
    now = [0.0]
    with SmtpServer() as a:
        b = SmtpServer()
        b_port = b.port
        pool = RelayPool(parse_relays(f"{a.url},smtp://127.0.0.1:{b_port}?timeout=1"),
                         clock=lambda: now[0])
        for n in range(10):  # b is not listening yet: every message goes to a
            assert pool.send("news@mailer.test", f"r{n}@example.org", BODY).sent
        assert len(a.handler.messages) == 10
        assert not pool.health[1].is_up(now[0])
        with b:
            now[0] += 60  # past its wait: the next pick health-checks it
            for n in range(10):
                assert pool.send("news@mailer.test", f"s{n}@example.org", BODY).sent
            assert pool.health[1].is_up(now[0])
            assert len(b.handler.messages) == 5
        pool.close()


def test_every_relay_down_is_a_relay_outcome():
    pool = RelayPool(parse_relays("smtp://127.0.0.1:1?timeout=1,smtp://127.0.0.1:9?timeout=1"))
    outcome = pool.send("news@mailer.test", "r@example.org", BODY)
    assert outcome.result == Result.RELAY
    assert pool.probe() is not None


class StopAfter:
    """Wraps a sender; stops one of the SMTP servers after `count` messages."""

    def __init__(self, inner: RelayPool, count: int, stop: Callable[[], None]) -> None:
        self.inner, self.count, self.stop, self.calls = inner, count, stop, 0

    def send(self, *args: Any, **kw: Any) -> Outcome:
        self.calls += 1
        if self.calls == self.count:
            self.stop()
        return self.inner.send(*args, **kw)

    def probe(self) -> Outcome | None:
        return self.inner.probe()

    def close(self) -> None:
        self.inner.close()


def test_a_relay_dies_mid_send_and_every_reader_gets_exactly_one_message(session, rt, dispatch):
    edition = planned_edition(session, rt, readers=60)
    a, b = SmtpServer(), SmtpServer()
    a.controller.start()
    with b:
        try:
            pool = RelayPool(parse_relays(f"{a.url}?timeout=2,{b.url}?timeout=2"))
            sender = StopAfter(pool, 20, a.controller.stop)
            report = lane(session, rt, sender, edition.id, sleep=lambda s: None)
            pool.close()
        finally:
            if a.controller._thread is not None:
                a.controller.stop()
        received = Counter(m.rcpt for m in a.handler.messages + b.handler.messages)
    rows = session.execute(select(Reader.email, Delivery.status, Delivery.attempts)
                           .join(Reader, Reader.id == Delivery.reader_id)
                           .where(Delivery.edition_id == edition.id)).all()
    assert len(rows) == 60
    for email, status, attempts in rows:
        assert status == "sent", (email, status, report)
        assert received[email] == 1, email
        assert attempts == 1  # a relay failure spends no attempt
    assert len(a.handler.messages) < 60 and len(b.handler.messages) > 0


def test_a_relay_rate_cap_spills_over_to_the_other_relay_and_paces_a_single_one(tmp_path):
    import time

    from mailer.delivery.ratelimit import LocalRateLimiter

    with SmtpServer() as a, SmtpServer() as b:
        relays = parse_relays(f"{a.url}?weight=9&rate=5,{b.url}?weight=1")
        caps = LocalRateLimiter(0.0, {relays[0].name: 5.0})
        pool = make_sender(",".join([f"{a.url}?weight=9&rate=5", f"{b.url}?weight=1"]),
                           tmp_path, relay_limit=caps.acquire)
        assert isinstance(pool, RelayPool)
        for n in range(20):
            assert pool.send("news@mailer.test", f"r{n}@example.org", BODY).sent
        pool.close()
        assert len(a.handler.messages) <= 3 and len(b.handler.messages) >= 17
        single = make_sender(f"{a.url}?rate=20", tmp_path,
                             relay_limit=LocalRateLimiter(0.0, {relays[0].name: 20.0}).acquire)
        started = time.monotonic()
        for n in range(6):
            assert single.send("news@mailer.test", f"s{n}@example.org", BODY).sent
        single.close()
        assert time.monotonic() - started >= 0.24  # 6 messages at 20/s


def test_a_storm_of_4xx_takes_a_relay_out():
    from mailer.mail.senders import STORM_THRESHOLD
    from tests.support.badsmtp import BadSmtpServer

    with BadSmtpServer("refuse_421_rcpt") as bad, SmtpServer() as good:
        pool = RelayPool(parse_relays(f"{bad.url()},{good.url}"))
        results = [pool.send("news@mailer.test", f"r{n}@example.org", BODY).result
                   for n in range(2 * STORM_THRESHOLD + 20)]
        pool.close()
        assert results.count(Result.TEMPORARY) == STORM_THRESHOLD  # then it was out
        assert results[-20:] == [Result.SENT] * 20
        assert not pool.health[0].is_up(pool.clock())
