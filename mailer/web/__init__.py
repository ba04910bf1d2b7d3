"""HTTP: blueprints and the error pages that keep every failure a clear 4xx."""

from __future__ import annotations

import hmac
import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from mailer.common.errors import ValidationError
from mailer.common.tokens import TokenError

log = logging.getLogger(__name__)


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def register_web(app: Flask) -> None:
    from mailer.web import api_readers  # noqa: F401 - adds its routes to `api`
    from mailer.web.api import api
    from mailer.web.digests_api import digests_api
    from mailer.web.archive import archive
    from mailer.web.public import public
    from mailer.web.webhooks import webhooks

    app.register_blueprint(public)
    app.register_blueprint(archive)
    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(digests_api, url_prefix="/api/v1")
    register_console(app)
    app.register_blueprint(webhooks, url_prefix="/webhooks")

    @app.errorhandler(ValidationError)
    def validation_error(exc: ValidationError) -> tuple[Response | str, int]:
        if wants_json():
            return jsonify(error=exc.message, fields=exc.fields), exc.status
        return render_template("message.html", title="Something is not right",
                               message=exc.message), exc.status

    @app.errorhandler(TokenError)
    def token_error(exc: TokenError) -> tuple[str, int]:
        return render_template("message.html", title="This link does not work",
                               message=str(exc)), 410 if exc.expired else 404

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> tuple[Response | str, int]:
        message = "The form expired or was not sent from our page. Please try again."
        if wants_json():
            return jsonify(error=message, fields={"csrf_token": exc.description}), 400
        return render_template("message.html", title="Please try again", message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response | str, int]:
        code = exc.code or 500
        if wants_json():
            return jsonify(error=exc.description or exc.name, fields={}), code
        return render_template("message.html", title=exc.name,
                               message=exc.description or ""), code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response | str, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return jsonify(error="internal error", fields={}), 500
        return render_template("message.html", title="Sorry",
                               message="Something went wrong on our side."), 500

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
    """The editors' console and the tracking endpoints (issue 6)."""
    from mailer.web.console import console
    from mailer.web.tracking import tracking

    app.register_blueprint(console, url_prefix="/console")
    app.register_blueprint(tracking)


def _load_editor(editor_id: str) -> object | None:
    from mailer.extensions import db
    from mailer.models import Editor

    number, _, fingerprint = editor_id.partition(".")
    if not number.isdigit() or len(number) > 18:
        return None
    editor = db.session.get(Editor, int(number))
    # Flask-Login checks is_active only at login: without this, a deactivated
    # editor's open session would keep working. A session from before the last
    # password change carries an old fingerprint and ends too.
    if editor is None or not editor.active:
        return None
    if not hmac.compare_digest(fingerprint, editor.session_fingerprint()):
        return None
    return editor
