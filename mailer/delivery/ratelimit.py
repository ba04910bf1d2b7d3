"""Send-rate caps: a global messages/second cap, per-receiving-domain caps, and
adaptive slow-down of a domain that answers 421/451.

`LocalRateLimiter` holds the caps inside one process (embedded default);
`RedisRateLimiter` shares them across every worker process through Redis.

Slow-down: each 421/451 from a domain doubles its slow-down factor (up to
`MAX_FACTOR`); the domain then gets `rate / factor` messages per second, where
`rate` is its configured cap or `UNCAPPED_BASE_RATE` when it has none. A
slow-down lasts `SLOW_SECONDS` after the last refusal, then the domain is back
to full speed. Refusals within `BUMP_INTERVAL` of the last doubling count
once, so a burst of 451s for many recipients halves the rate, not 64-fold.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

MAX_FACTOR = 64
SLOW_SECONDS = 120.0
BUMP_INTERVAL = 10.0  # refusals within this many seconds of a doubling count once
UNCAPPED_BASE_RATE = 20.0  # msgs/s for a refusing domain that has no configured cap
THROTTLE_CODES = frozenset({421, 450, 451, 452})


class RateLimiter(Protocol):
    def acquire(self, domain: str, max_wait: float = math.inf) -> float:
        """Take a slot for one message to `domain`, sleeping up to `max_wait`
        for it; returns 0. When the slot is further away than `max_wait`, takes
        nothing and returns the seconds until then (the caller defers the message)."""
        ...

    def slow_down(self, domain: str) -> None:
        """The domain answered 421/451: send to it more slowly for a while."""
        ...


class NoLimit:
    def acquire(self, domain: str, max_wait: float = math.inf) -> float:
        return 0.0

    def slow_down(self, domain: str) -> None:
        return None


class _Slowdowns:
    """domain -> (factor, until); shared by both limiters' bookkeeping."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.items: dict[str, tuple[float, float, float]] = {}  # factor, until, last bump

    def factor(self, domain: str) -> float:
        item = self.items.get(domain)
        if item is None:
            return 1.0
        if item[1] < self.clock():
            del self.items[domain]
            return 1.0
        return item[0]

    def bump(self, domain: str) -> float:
        now = self.clock()
        factor = self.factor(domain)
        last = self.items[domain][2] if domain in self.items else -math.inf
        if now - last >= BUMP_INTERVAL:
            factor, last = min(factor * 2, MAX_FACTOR), now
        self.items[domain] = (factor, now + SLOW_SECONDS, last)
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

    def acquire(self, domain: str, max_wait: float = math.inf) -> float:
        with self._lock:
            now = self.clock()
            caps = [("*", self.rate),
                    (domain, domain_rate(domain, self.domain_rates, self.slow.factor(domain)))]
            slots = [(key, rate, max(now, self._next.get(key, now))) for key, rate in caps
                     if rate > 0]
            wait = max((slot - now for _, _, slot in slots), default=0.0)
            if wait > max_wait:
                return wait
            for key, rate, slot in slots:
                self._next[key] = slot + 1.0 / rate
        if wait > 0:
            self.sleep(wait)
        return 0.0

    def slow_down(self, domain: str) -> None:
        with self._lock:
            self.slow.bump(domain)


class RedisRateLimiter:
    """Slots handed out by Redis, so the caps hold across all worker processes.

    Slow-downs live in one Redis hash; each process re-reads it at most once a
    second, so a domain without a cap or slow-down costs no Redis round trip.
    """

    # Atomically: the wait for the global and the domain slot (ms); when it is
    # within max_wait, take both slots. Returns {wait_ms, taken (1/0)}.
    SCRIPT = """
    local now = tonumber(ARGV[1])
    local max_wait = tonumber(ARGV[4])
    local wait = 0
    local nxt = {}
    for i = 1, 2 do
        local step = tonumber(ARGV[i + 1])
        if step > 0 then
            local n = tonumber(redis.call('GET', KEYS[i]) or '0')
            if n < now then n = now end
            nxt[i] = n
            if n - now > wait then wait = n - now end
        end
    end
    if wait > max_wait then return {wait, 0} end
    for i = 1, 2 do
        if nxt[i] then
            redis.call('SET', KEYS[i], nxt[i] + tonumber(ARGV[i + 1]), 'PX', 600000)
        end
    end
    return {wait, 1}
    """
    # Double a domain's factor (capped, at most once per BUMP_INTERVAL) and note
    # when its slow-down ends. Stored as "factor:until_ms:last_bump_ms".
    BUMP = """
    local now = tonumber(ARGV[2])
    local raw = redis.call('HGET', KEYS[1], ARGV[1])
    local factor, last = 1, -1e15
    if raw then
        local f, untilms, l = string.match(raw, '([^:]+):([^:]+):([^:]+)')
        if tonumber(untilms) >= now then factor = tonumber(f); last = tonumber(l) end
    end
    if now - last >= tonumber(ARGV[5]) then
        factor = math.min(factor * 2, tonumber(ARGV[4]))
        last = now
    end
    redis.call('HSET', KEYS[1], ARGV[1], factor .. ':' .. (now + tonumber(ARGV[3])) .. ':' .. last)
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


    def _factors(self) -> dict[str, float]:
        now = time.monotonic()
        if now - self._slow_read_at >= self.refresh_seconds:
            self._slow_read_at = now
            now_ms = int(time.time() * 1000)
            fresh: dict[str, float] = {}
            for domain, raw in self.client.hgetall(self.prefix + "slow").items():
                factor, until, _ = _text(raw).split(":")
                if int(float(until)) >= now_ms:
                    fresh[_text(domain)] = float(factor)
            self._slow = fresh
        return self._slow

    def acquire(self, domain: str, max_wait: float = math.inf) -> float:
        try:
            rate = domain_rate(domain, self.domain_rates, self._factors().get(domain, 1.0))
            if self.rate <= 0 and rate <= 0:
                return 0.0  # no cap applies: no Redis round trip
            wait_ms, taken = self.script(
                keys=[self.prefix + "*", self.prefix + domain],
                args=[int(time.time() * 1000), 1000.0 / self.rate if self.rate > 0 else 0,
                      1000.0 / rate if rate > 0 else 0,
                      max_wait * 1000 if math.isfinite(max_wait) else 1e15])
            wait = float(wait_ms) / 1000
            if not taken:
                return wait
        except Exception:  # Redis down: fall back to a polite pace
            wait = 1.0 / self.rate if self.rate > 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return 0.0

    def slow_down(self, domain: str) -> None:
        try:
            factor = self.bump(keys=[self.prefix + "slow"], args=[
                domain, int(time.time() * 1000), int(SLOW_SECONDS * 1000), MAX_FACTOR,
                int(BUMP_INTERVAL * 1000)])
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
