"""Settings checks: SMTP reachable, DKIM record text matches the key, DNS records of the
sending domains, rate limits shown."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from mailer.common import ValidationError
from mailer.console import (
    CheckResult,
    DnsReport,
    check_bounces,
    check_dkim,
    check_smtp,
    run_dns_checks,
    update_publication,
)
from mailer.extensions import db
from mailer.mail import domain_of
from mailer.readers import load_publication
from mailer.runtime import runtime
from mailer.web.console.auth import admin_required, editor_required, viewer_required
from mailer.web.console.blueprint import console

PUBLICATION_FIELDS = ("name", "logo_url", "accent_color", "website_url", "postal_address",
                      "language", "from_name", "footer_text")


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
          brand: dict[str, Any] | None = None, brand_errors: dict[str, str] | None = None,
          bounces: CheckResult | None = None, dns: DnsReport | None = None) -> str:
    s = runtime().settings
    return render_template(
        "console/settings.html", s=s, smtp_url=_masked(s.smtp_url), smtp=smtp, dkim=dkim,
        bounces=bounces, dns=dns, bounce_mailbox=_masked(s.bounce_mailbox),
        pasted=pasted, dkim_domain=s.dkim_domain or domain_of(s.mail_from),
        broker=urlsplit(s.broker_url).scheme or s.broker_url,
        database=urlsplit(s.database_url).scheme,
        brand=brand or load_publication(db.session, s).json(), brand_errors=brand_errors or {})


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


@console.post("/settings/publication")
@admin_required
def settings_publication() -> Response | tuple[str, int]:
    """Save the publication's identity; on a refused value the form comes back as
    typed, the error beside its field."""
    typed = {name: str(request.form.get(name, ""))[:2000] for name in PUBLICATION_FIELDS}
    try:
        update_publication(db.session, runtime().settings, typed, updated_by=current_user.email)
    except ValidationError as exc:
        db.session.rollback()
        return _page(brand=typed, brand_errors=exc.fields), exc.status
    flash("Publication settings saved.", "ok")
    return redirect(url_for("console.settings") + "#publication")


@console.post("/settings/bounce-check")
@editor_required
def settings_bounce_check() -> str:
    return _page(bounces=check_bounces(runtime().settings))


@console.post("/settings/dns-check")
@editor_required
def settings_dns_check() -> str:
    """Look up SPF, DKIM, DMARC and the HELO name's DNS; a few seconds at most."""
    return _page(dns=run_dns_checks(runtime().settings))
