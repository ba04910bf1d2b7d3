"""The editors' console, mounted at /console.

Every view is wrapped in a role decorator (auth.py); a blueprint-wide guard
backs them up: anonymous visitors go to the login page, and only admins and
editors may send anything but GET/HEAD. CSRF is checked globally by CSRFProtect.
"""

from __future__ import annotations

from flask import Blueprint

console = Blueprint("console", __name__)

from mailer.web.console import (  # noqa: E402  (views register on the blueprint)
    alerts,
    auth,
    automations,
    content,
    dashboard,
    digests,
    editions,
    editors,
    outbox,
    readers,
    segments,
    settings,
    webhooks,
)

__all__ = ["alerts", "auth", "automations", "console", "content", "dashboard", "digests", "editions",
           "editors", "outbox", "readers", "segments", "settings", "webhooks"]
