"""Per-process objects the services need, built once from settings.

Held in `app.extensions["mailer"]`; views and tasks fetch them with `runtime()`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import current_app

from mailer.common import SignupGuard, Tokens
from mailer.common.limits_storage import storage_uri_for
from mailer.config import Settings
from mailer.delivery import RateLimiter, SkeletonCache, make_rate_limiter
from mailer.mail import DkimSigner, RelayLimit, Sender, dkim_signer, make_sender, parse_relays


@dataclass
class Runtime:
    settings: Settings
    tokens: Tokens
    dkim: DkimSigner | None = None
    # Tests put a MemorySender here; otherwise one sender per thread from config.
    sender_override: Sender | None = None
    _local: threading.local = field(default_factory=threading.local)
    _limiter: RateLimiter | None = None
    _relay_limiter: RateLimiter | None = None
    _guard: SignupGuard | None = None

    def sender(self) -> Sender:
        if self.sender_override is not None:
            return self.sender_override
        sender = getattr(self._local, "sender", None)
        if sender is None:
            sender = make_sender(
                self.settings.smtp_url, self.settings.outbox_path,
                helo=self.settings.helo_name, relay_limit=self.relay_limit(),
            )
            self._local.sender = sender
        return sender

    @contextmanager
    def one_off_sender(self) -> Iterator[Sender]:
        """A sender for a few messages from a web request, closed afterwards."""
        if self.sender_override is not None:
            yield self.sender_override
            return
        sender = make_sender(self.settings.smtp_url, self.settings.outbox_path,
                             helo=self.settings.helo_name)
        try:
            yield sender
        finally:
            sender.close()

    def skeletons(self) -> SkeletonCache:
        cache = getattr(self._local, "skeletons", None)
        if cache is None:
            cache = SkeletonCache(self.settings, self.dkim)
            self._local.skeletons = cache
        return cache

    def relay_limit(self) -> RelayLimit | None:
        """Per-relay caps (`rate=` in MAILER_SMTP_URL), shared through Redis when it is there."""
        if self._relay_limiter is None:
            try:
                rates = {t.name: t.rate for t in parse_relays(self.settings.smtp_url) if t.rate}
            except ValueError:
                rates = {}
            if not rates:
                return None
            s = self.settings
            self._relay_limiter = make_rate_limiter(0.0, rates, s.redis_url,
                                                    prefix=f"mailer:rate:{s.queue_name}:relay:")
        return self._relay_limiter.acquire

    def signup_guard(self) -> SignupGuard:
        """The signup challenge's policy and spent-challenge record (built again
        when the settings it reads change; the storage connection is kept)."""
        s = self.settings
        uri = storage_uri_for(s.redis_url, s.instance_path)
        guard = self._guard
        if guard is None or (guard.mode, guard.difficulty, guard.storage_uri, guard.signup_limit,
                             guard.secret_key) != (s.signup_challenge, s.signup_challenge_difficulty,
                                                   uri, s.signup_rate_limit, s.secret_key):
            same_store = guard is not None and guard.storage_uri == uri
            guard = self._guard = SignupGuard(
                s.secret_key, s.signup_challenge, s.signup_challenge_difficulty, uri,
                s.signup_rate_limit, storage=guard.storage if same_store and guard else None)
        return guard

    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            s = self.settings
            self._limiter = make_rate_limiter(s.send_rate, s.domain_rates, s.redis_url,
                                              prefix=f"mailer:rate:{s.queue_name}:")
        return self._limiter


def build_runtime(settings: Settings) -> Runtime:
    return Runtime(settings=settings, tokens=Tokens(settings.secret_key),
                   dkim=dkim_signer(settings))


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["mailer"]
    return rt
