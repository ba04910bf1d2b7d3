"""Caps on what one account may make the server do, counted across every
process (Redis or the SQLite counter file, as the login limit)."""

from __future__ import annotations

import functools

from limits import RateLimitItemPerHour
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from mailer.common.errors import ValidationError
from mailer.common.limits_storage import storage_uri_for
from mailer.config import Settings


@functools.cache
def _limiter(uri: str) -> FixedWindowRateLimiter:
    return FixedWindowRateLimiter(storage_from_string(uri))


def spend_test_sends(settings: Settings, actor: str, count: int) -> None:
    """Count `count` test addresses against `actor`'s hourly cap, or refuse them all
    (429) when they would go over it."""
    cap = settings.test_send_hourly_cap
    limiter = _limiter(storage_uri_for(settings.redis_url, settings.instance_path))
    item = RateLimitItemPerHour(cap)
    # Tested first: a refused request must not use up what is left of the hour.
    if (count > cap or not limiter.test(item, "test-send", actor, cost=count)
            or not limiter.hit(item, "test-send", actor, cost=count)):
        raise ValidationError(f"At most {cap} test addresses per hour per account; "
                              "try again later.", {"addresses": "hourly cap reached"}, status=429)
