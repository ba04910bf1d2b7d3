"""HTTP: the blueprints, error handlers and security headers of the app."""

from __future__ import annotations

import logging

from flask import Flask, Response, request

from mailer.web import api_readers  # noqa: F401 - adds its routes to `api`
from mailer.web.api import api
from mailer.web.api_alerts import alerts_api
from mailer.web.api_automations import automations_api
from mailer.web.api_segments import segments_api
from mailer.web.api_webhooks import webhooks_api
from mailer.web.archive import archive
from mailer.web.console import console
from mailer.web.digests_api import digests_api
from mailer.web.errors import register_error_handlers
from mailer.web.public import public
from mailer.web.tracking import tracking
from mailer.web.webhooks import webhooks

log = logging.getLogger(__name__)


def register_web(app: Flask) -> None:
    app.register_blueprint(public)
    app.register_blueprint(archive)
    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(digests_api, url_prefix="/api/v1")
    app.register_blueprint(automations_api, url_prefix="/api/v1")
    app.register_blueprint(alerts_api, url_prefix="/api/v1")
    app.register_blueprint(segments_api, url_prefix="/api/v1")
    app.register_blueprint(webhooks_api, url_prefix="/api/v1")
    register_console(app)
    app.register_blueprint(webhooks, url_prefix="/webhooks")

    register_error_handlers(app)

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
