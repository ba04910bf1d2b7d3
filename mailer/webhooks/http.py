"""The one HTTP call webhooks make, behind `_post`, through the URL-safety module
(`mailer/common/urlsafety.py`), like feeds and SNS.

The host is resolved and every address it resolves to must be public (not
loopback, private, link-local, shared, multicast, reserved or unspecified, IPv4
and IPv6, mapped and numeric spellings included) unless private addresses are
allowed (`MAILER_ALLOW_PRIVATE_URLS=1`); the connection goes to the address that
was checked. A 307 or 308 redirect (which keep the POST and its body) is
followed, its target checked the same way before any connection, up to three
times; any other redirect would turn the call into a GET without the event, so
it is a failed call. One deadline covers the whole call, redirects included.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailer.common import urlsafety
from mailer.common.urlsafety import FetchError, UnsafeURL, check_url

__all__ = ["PostResult", "UnsafeURL", "check_url"]

KEEP_METHOD = (307, 308)
MAX_REDIRECTS = 3
REDIRECT_REFUSED = ("refused: the endpoint redirected to an address webhooks may not call "
                    "(only public http:// and https:// addresses are allowed)")


@dataclass(frozen=True)
class PostResult:
    status: int | None  # None: no HTTP answer (refused, timeout, unsafe address)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _post(url: str, body: bytes, headers: dict[str, str], allow_private: bool, *,
          timeout: float = 10.0, max_bytes: int = 1_000_000) -> PostResult:
    """POST `body` to `url`; never raises. `timeout` bounds the whole call."""
    try:
        check_url(url, allow_private=allow_private)
    except UnsafeURL as exc:
        return PostResult(None, f"refused: {exc}")
    try:
        result = urlsafety.fetch(url, method="POST", body=body, headers=headers,
                                 total_timeout=timeout, max_bytes=max_bytes,
                                 max_redirects=MAX_REDIRECTS, follow=KEEP_METHOD,
                                 allow_private=allow_private)
    except UnsafeURL:
        # The URL itself passed just above: a redirect led somewhere refused.
        return PostResult(None, REDIRECT_REFUSED)
    except FetchError as exc:
        return PostResult(None, str(exc)[:300] or "connection failed")
    status = result.status
    if 300 <= status < 400:
        location = result.headers.get("location", "")[:200]
        why = ("too many redirects" if status in KEEP_METHOD
               else "only 307 and 308 keep the POST and its body")
        return PostResult(status, f"redirect to {location!r} not followed: {why}")
    return PostResult(status, "" if 200 <= status < 300 else f"HTTP {status}")
