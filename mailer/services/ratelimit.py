"""Send-rate caps: a global messages/second cap and per-receiving-domain caps.

`LocalRateLimiter` holds the caps inside one process (embedded default);
`RedisRateLimiter` shares them across every worker process through Redis.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class RateLimiter(Protocol):
    def acquire(self, domain: str) -> None:
        """Block until one message to `domain` may go out."""
        ...


class NoLimit:
    def acquire(self, domain: str) -> None:
        return None


class LocalRateLimiter:
    """Evenly spaced slots per key, in this process only."""

    def __init__(self, rate: float, domain_rates: dict[str, float] | None = None) -> None:
        self.rate = rate
        self.domain_rates = domain_rates or {}
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def _wait(self, key: str, rate: float) -> None:
        if rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(key, now))
            self._next[key] = slot + 1.0 / rate
        if slot > now:
            time.sleep(slot - now)

    def acquire(self, domain: str) -> None:
        self._wait("*", self.rate)
        if domain in self.domain_rates:
            self._wait(domain, self.domain_rates[domain])


class RedisRateLimiter:
    """Slots handed out by Redis, so the caps hold across all worker processes."""

    # Reserve the next slot for a key atomically; returns ms to wait.
    SCRIPT = """
    local now = tonumber(ARGV[1])
    local step = tonumber(ARGV[2])
    local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
    if nxt < now then nxt = now end
    redis.call('SET', KEYS[1], nxt + step, 'PX', 60000)
    return nxt - now
    """

    def __init__(self, url: str, rate: float, domain_rates: dict[str, float] | None = None,
                 prefix: str = "mailer:rate:") -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(self.SCRIPT)
        self.rate = rate
        self.domain_rates = domain_rates or {}
        self.prefix = prefix

    def _wait(self, key: str, rate: float) -> None:
        if rate <= 0:
            return
        now_ms = int(time.time() * 1000)
        wait_ms = int(self.script(keys=[self.prefix + key], args=[now_ms, 1000.0 / rate]))
        if wait_ms > 0:
            time.sleep(wait_ms / 1000)

    def acquire(self, domain: str) -> None:
        self._wait("*", self.rate)
        if domain in self.domain_rates:
            self._wait(domain, self.domain_rates[domain])


def make_rate_limiter(
    rate: float, domain_rates: dict[str, float], redis_url: str | None
) -> RateLimiter:
    if rate <= 0 and not domain_rates:
        return NoLimit()
    if redis_url:
        return RedisRateLimiter(redis_url, rate, domain_rates)
    return LocalRateLimiter(rate, domain_rates)
