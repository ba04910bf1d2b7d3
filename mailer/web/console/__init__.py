"""The editors' console, mounted at /console.

Every view is wrapped in a role decorator (auth.py); a blueprint-wide guard
backs them up: anonymous visitors go to the login page, and only admins and
editors may send anything but GET/HEAD. CSRF is checked globally by CSRFProtect.
"""

from __future__ import annotations

from mailer.web.console import (  # the views register on the blueprint
    alerts,
    audit,
    auth,
    automations,
    content,
    dashboard,
    digests,
    drafts,
    editions,
    editors,
    outbox,
    readers,
    segments,
    settings,
    webhooks,
)
from mailer.web.console.blueprint import console

__all__ = ["alerts", "audit", "auth", "automations", "console", "content", "dashboard", "digests", "drafts",
           "editions", "editors", "outbox", "readers", "segments", "settings", "webhooks"]
