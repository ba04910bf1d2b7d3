"""Flask's JSON provider with safe parsing: every `request.get_json()` of every
route (API, webhooks) checks depth and surrogates first (common/safejson.py)."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from mailer.common import safejson


class SafeJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return safejson.loads(s, **kwargs)
