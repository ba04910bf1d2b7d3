"""HTTP: the blueprints, error handlers and security headers of the app."""

from __future__ import annotations

import logging

from flask import Flask, Response, request

from mailer.web.api import API_PREFIX
from mailer.web.api_alerts import api_alerts
from mailer.web.api_articles import api_articles
from mailer.web.api_automations import api_automations
from mailer.web.api_digests import api_digests
from mailer.web.api_editions import api_editions
from mailer.web.api_feeds import api_feeds
from mailer.web.api_publication import api_publication
from mailer.web.api_readers import api_readers
from mailer.web.api_segments import api_segments
from mailer.web.api_webhooks import api_webhooks
from mailer.web.archive import archive
from mailer.web.branding import register_branding
from mailer.web.console.blueprint import console
from mailer.web.engagement import engagement
from mailer.web.errors import register_error_handlers
from mailer.web.openapi import api_docs
from mailer.web.public import public
from mailer.web.tracking import tracking
from mailer.web.webhooks import webhooks

log = logging.getLogger(__name__)

# Every blueprint of the JSON API, each one resource; all share the /api/v1 prefix.
API_BLUEPRINTS = (api_docs, api_articles, api_readers, api_digests, api_feeds, api_editions,
                  api_publication, api_automations, api_alerts, api_segments, api_webhooks)


def register_web(app: Flask) -> None:
    app.register_blueprint(public)
    app.register_blueprint(engagement)
    app.register_blueprint(archive)
    for blueprint in API_BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix=API_PREFIX)
    register_console(app)
    app.register_blueprint(webhooks, url_prefix="/webhooks")

    register_error_handlers(app)
    register_branding(app)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/archive/"):
            response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'" if not request.path.startswith("/archive/") else
            "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'",
        )
        return response


def register_console(app: Flask) -> None:
    """The editors' console and the tracking endpoints."""
    app.register_blueprint(console, url_prefix="/console")
    app.register_blueprint(tracking)
