"""Rate limiter: global and per-domain caps, adaptive slow-down after 421/451,
in one process (fake clock) and shared across processes through real Redis."""

from __future__ import annotations

import uuid

import pytest

from mailer.delivery import ratelimit
from mailer.delivery.ratelimit import LocalRateLimiter, RedisRateLimiter, make_rate_limiter
from tests.support import services


class FakeTime:
    """A clock that only moves when the limiter sleeps: waits are exact."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def local(rate: float = 0, domains: dict[str, float] | None = None) -> tuple[LocalRateLimiter,
                                                                            FakeTime]:
    t = FakeTime()
    return LocalRateLimiter(rate, domains, clock=t.clock, sleep=t.sleep), t


def test_no_caps_never_waits():
    limiter, t = local()
    for _ in range(1000):
        limiter.acquire("example.org")
    assert t.slept == []


def test_global_cap_spaces_messages_evenly():
    limiter, t = local(rate=10)
    start = t.now
    for _ in range(21):
        limiter.acquire("example.org")
    assert t.now - start == pytest.approx(2.0)  # 21 messages at 10/s: 20 gaps of 0.1 s


def test_domain_cap_applies_only_to_that_domain():
    limiter, t = local(domains={"gmail.com": 2})
    for _ in range(5):
        limiter.acquire("example.org")
    assert t.slept == []
    start = t.now
    for _ in range(5):
        limiter.acquire("gmail.com")
    assert t.now - start == pytest.approx(2.0)  # 5 at 2/s


def test_throttle_answers_slow_the_domain_down_then_it_recovers():
    limiter, t = local(domains={"gmail.com": 10})
    limiter.slow_down("gmail.com")  # factor 2 -> 5/s
    limiter.slow_down("gmail.com")  # the same burst: still 2
    assert limiter.slow.factor("gmail.com") == 2
    t.now += ratelimit.BUMP_INTERVAL
    limiter.slow_down("gmail.com")  # still refusing a second later: factor 4 -> 2.5/s
    start = t.now
    for _ in range(6):
        limiter.acquire("gmail.com")
    assert t.now - start == pytest.approx(5 * 0.4)
    limiter.acquire("example.org")  # other domains unaffected
    assert t.now - start == pytest.approx(5 * 0.4)
    t.now += ratelimit.SLOW_SECONDS + 1  # no refusal for a while: full speed again
    start = t.now
    for _ in range(11):
        limiter.acquire("gmail.com")
    assert t.now - start == pytest.approx(1.0)


def test_an_uncapped_domain_that_refuses_gets_a_cap():
    limiter, t = local()
    limiter.slow_down("yahoo.com")
    start = t.now
    for _ in range(3):
        limiter.acquire("yahoo.com")
    assert t.now - start == pytest.approx(2 / (ratelimit.UNCAPPED_BASE_RATE / 2))


def test_slow_down_factor_is_capped():
    limiter, t = local()
    for _ in range(20):
        limiter.slow_down("x.org")
        t.now += ratelimit.BUMP_INTERVAL
    assert limiter.slow.factor("x.org") == ratelimit.MAX_FACTOR


@pytest.fixture
def redis_prefix():
    services.require("redis")
    import redis

    prefix = f"mailer:test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(services.REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def test_a_slot_too_far_away_is_not_taken_and_the_wait_is_returned():
    limiter, t = local(domains={"gmail.com": 1})
    assert limiter.acquire("gmail.com", max_wait=0.5) == 0  # first slot: now
    assert limiter.acquire("gmail.com", max_wait=0.5) == pytest.approx(1.0)  # not taken
    assert t.slept == []
    assert limiter.acquire("gmail.com") == 0  # willing to wait: takes the same slot
    assert t.slept == [pytest.approx(1.0)]


def test_redis_limiter_shares_slots_between_limiters(redis_prefix, monkeypatch):
    """Two limiters (as in two worker processes) draw from the same slots."""
    waits: list[float] = []
    monkeypatch.setattr(ratelimit.time, "sleep", waits.append)
    a = RedisRateLimiter(services.REDIS_URL, 0, {"gmail.com": 5}, prefix=redis_prefix)
    b = RedisRateLimiter(services.REDIS_URL, 0, {"gmail.com": 5}, prefix=redis_prefix)
    for limiter in (a, b, a, b):
        limiter.acquire("gmail.com")
    # 4 reservations at 5/s: the later ones wait ~0.2, 0.4, 0.6 s (a shared schedule)
    assert len(waits) == 3
    assert waits == sorted(waits) and waits[-1] == pytest.approx(0.6, abs=0.1)


def test_redis_slow_down_is_seen_by_other_processes(redis_prefix, monkeypatch):
    monkeypatch.setattr(ratelimit.time, "sleep", lambda s: None)
    a = RedisRateLimiter(services.REDIS_URL, 0, {}, prefix=redis_prefix, refresh_seconds=0)
    b = RedisRateLimiter(services.REDIS_URL, 0, {}, prefix=redis_prefix, refresh_seconds=0)
    assert b._factors().get("hotmail.com") is None
    a.slow_down("hotmail.com")
    a.slow_down("hotmail.com")  # same burst
    assert b._factors()["hotmail.com"] == 2
    gmail = RedisRateLimiter(services.REDIS_URL, 0, {"gmail.com": 1}, prefix=redis_prefix)
    assert gmail.acquire("gmail.com", max_wait=0.2) == 0
    assert gmail.acquire("gmail.com", max_wait=0.2) > 0.5  # deferred, slot not taken


def test_make_rate_limiter_uses_redis_when_the_broker_is_redis(redis_prefix):
    assert isinstance(make_rate_limiter(0, {}, services.REDIS_URL, prefix=redis_prefix),
                      RedisRateLimiter)
    assert isinstance(make_rate_limiter(5, {}, None), LocalRateLimiter)
