"""Settings checks: SMTP reachable, DKIM record text matches the key, rate limits shown."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask import render_template, request

from mailer.console import CheckResult, check_bounces, check_dkim, check_smtp
from mailer.mail import domain_of
from mailer.runtime import runtime
from mailer.web.console import console
from mailer.web.console.auth import editor_required, viewer_required


def _masked(url: str) -> str:
    """The SMTP URL without its password."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _page(smtp: CheckResult | None = None, dkim: CheckResult | None = None, pasted: str = "",
          bounces: CheckResult | None = None) -> str:
    s = runtime().settings
    return render_template(
        "console/settings.html", s=s, smtp_url=_masked(s.smtp_url), smtp=smtp, dkim=dkim,
        bounces=bounces, bounce_mailbox=_masked(s.bounce_mailbox),
        pasted=pasted, dkim_domain=s.dkim_domain or domain_of(s.mail_from),
        broker=urlsplit(s.broker_url).scheme or s.broker_url,
        database=urlsplit(s.database_url).scheme)


@console.get("/settings")
@viewer_required
def settings() -> str:
    return _page()


@console.post("/settings/smtp-check")
@editor_required
def settings_smtp_check() -> str:
    return _page(smtp=check_smtp(runtime().settings.smtp_url))


@console.post("/settings/dkim-check")
@editor_required
def settings_dkim_check() -> str:
    s = runtime().settings
    pasted = str(request.form.get("record", ""))[:8000]
    result = check_dkim(s.dkim_private_key_path, s.dkim_selector,
                        s.dkim_domain or domain_of(s.mail_from), pasted)
    return _page(dkim=result, pasted=pasted)


@console.post("/settings/bounce-check")
@editor_required
def settings_bounce_check() -> str:
    return _page(bounces=check_bounces(runtime().settings))
