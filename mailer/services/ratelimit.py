"""Send-rate caps: a global messages/second cap, per-receiving-domain caps, and
adaptive slow-down of a domain that answers 421/451.

`LocalRateLimiter` holds the caps inside one process (embedded default);
`RedisRateLimiter` shares them across every worker process through Redis.

Slow-down: each 421/451 from a domain doubles its slow-down factor (up to
`MAX_FACTOR`); the domain then gets `rate / factor` messages per second, where
`rate` is its configured cap or `UNCAPPED_BASE_RATE` when it has none. A
slow-down lasts `SLOW_SECONDS` after the last refusal, then the domain is back
to full speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

MAX_FACTOR = 64
SLOW_SECONDS = 300.0
UNCAPPED_BASE_RATE = 20.0  # msgs/s for a refusing domain that has no configured cap
THROTTLE_CODES = frozenset({421, 450, 451, 452})


class RateLimiter(Protocol):
    def acquire(self, domain: str) -> None:
        """Block until one message to `domain` may go out."""
        ...

    def slow_down(self, domain: str) -> None:
        """The domain answered 421/451: send to it more slowly for a while."""
        ...


class NoLimit:
    def acquire(self, domain: str) -> None:
        return None

    def slow_down(self, domain: str) -> None:
        return None


class _Slowdowns:
    """domain -> (factor, until); shared by both limiters' bookkeeping."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.items: dict[str, tuple[float, float]] = {}

    def factor(self, domain: str) -> float:
        item = self.items.get(domain)
        if item is None:
            return 1.0
        if item[1] < self.clock():
            del self.items[domain]
            return 1.0
        return item[0]

    def bump(self, domain: str) -> float:
        factor = min(self.factor(domain) * 2, MAX_FACTOR)
        self.items[domain] = (factor, self.clock() + SLOW_SECONDS)
        return factor


def domain_rate(domain: str, domain_rates: dict[str, float], factor: float) -> float:
    """The rate a domain gets now (0 = no cap)."""
    base = domain_rates.get(domain, 0.0)
    if factor <= 1:
        return base
    return (base or UNCAPPED_BASE_RATE) / factor


class LocalRateLimiter:
    """Evenly spaced slots per key, in this process only."""

    def __init__(self, rate: float, domain_rates: dict[str, float] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.domain_rates = domain_rates or {}
        self.clock = clock
        self.sleep = sleep
        self.slow = _Slowdowns(clock)
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def _reserve(self, key: str, rate: float) -> float:
        """Take the next slot for `key`; returns seconds to wait for it."""
        if rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            slot = max(now, self._next.get(key, now))
            self._next[key] = slot + 1.0 / rate
        return slot - now

    def acquire(self, domain: str) -> None:
        wait = self._reserve("*", self.rate)
        with self._lock:
            factor = self.slow.factor(domain)
        rate = domain_rate(domain, self.domain_rates, factor)
        wait = max(wait, self._reserve(domain, rate))
        if wait > 0:
            self.sleep(wait)

    def slow_down(self, domain: str) -> None:
        with self._lock:
            self.slow.bump(domain)


class RedisRateLimiter:
    """Slots handed out by Redis, so the caps hold across all worker processes.

    Slow-downs live in one Redis hash; each process re-reads it at most once a
    second, so a domain without a cap or slow-down costs no Redis round trip.
    """

    # Reserve the next slot for a key atomically; returns ms to wait.
    SCRIPT = """
    local now = tonumber(ARGV[1])
    local step = tonumber(ARGV[2])
    local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
    if nxt < now then nxt = now end
    redis.call('SET', KEYS[1], nxt + step, 'PX', 60000)
    return nxt - now
    """
    # Double a domain's factor (capped) and note when its slow-down ends.
    BUMP = """
    local raw = redis.call('HGET', KEYS[1], ARGV[1])
    local factor = 1
    if raw then
        local f, untilms = string.match(raw, '([^:]+):([^:]+)')
        if tonumber(untilms) >= tonumber(ARGV[2]) then factor = tonumber(f) end
    end
    factor = math.min(factor * 2, tonumber(ARGV[4]))
    redis.call('HSET', KEYS[1], ARGV[1], factor .. ':' .. (tonumber(ARGV[2]) + tonumber(ARGV[3])))
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
    return factor
    """

    def __init__(self, url: str, rate: float, domain_rates: dict[str, float] | None = None,
                 prefix: str = "mailer:rate:", refresh_seconds: float = 1.0) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.script = self.client.register_script(self.SCRIPT)
        self.bump = self.client.register_script(self.BUMP)
        self.rate = rate
        self.domain_rates = domain_rates or {}
        self.prefix = prefix
        self.refresh_seconds = refresh_seconds
        self._slow: dict[str, float] = {}
        self._slow_read_at = -1e9

    def _wait(self, key: str, rate: float) -> float:
        if rate <= 0:
            return 0.0
        now_ms = int(time.time() * 1000)
        return int(self.script(keys=[self.prefix + key], args=[now_ms, 1000.0 / rate])) / 1000

    def _factors(self) -> dict[str, float]:
        now = time.monotonic()
        if now - self._slow_read_at >= self.refresh_seconds:
            self._slow_read_at = now
            now_ms = int(time.time() * 1000)
            fresh: dict[str, float] = {}
            for domain, raw in self.client.hgetall(self.prefix + "slow").items():
                factor, _, until = raw.decode().partition(":")
                if int(float(until)) >= now_ms:
                    fresh[domain.decode()] = float(factor)
            self._slow = fresh
        return self._slow

    def acquire(self, domain: str) -> None:
        try:
            wait = self._wait("*", self.rate)
            rate = domain_rate(domain, self.domain_rates, self._factors().get(domain, 1.0))
            wait = max(wait, self._wait(domain, rate))
        except Exception:  # Redis down: fall back to a polite pace
            wait = 1.0 / self.rate if self.rate > 0 else 0.0
        if wait > 0:
            time.sleep(wait)

    def slow_down(self, domain: str) -> None:
        try:
            factor = self.bump(keys=[self.prefix + "slow"], args=[
                domain, int(time.time() * 1000), int(SLOW_SECONDS * 1000), MAX_FACTOR])
            self._slow[domain] = float(factor)
        except Exception:  # noqa: S110 - a lost slow-down only costs speed
            pass


def make_rate_limiter(
    rate: float, domain_rates: dict[str, float], redis_url: str | None,
    prefix: str = "mailer:rate:",
) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, rate, domain_rates, prefix=prefix)
    return LocalRateLimiter(rate, domain_rates)
