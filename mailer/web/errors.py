"""App-wide error handlers: every failure is a clear answer (HTML for pages, JSON
`{"error", "fields"}` for the API and webhooks), never a traceback."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, jsonify, render_template, request, url_for
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException

from mailer.common import TokenError, ValidationError
from mailer.extensions import db, limiter

log = logging.getLogger(__name__)


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(429)
    def too_many_requests(exc: RateLimitExceeded) -> Response:
        # Rate-limit headers are off (a Redis round trip per answer); only a 429 says when
        # to come back, from the window of the limit that was hit.
        retry = None
        current = limiter.current_limit
        if current is not None:
            retry = max(1, int(current.reset_at - time.time()))
        elif getattr(exc, "limit", None) is not None:
            retry = exc.limit.limit.get_expiry()
        if request.path.startswith("/api/"):
            response = jsonify(error="too many requests; try again later", fields={})
        else:
            response = Response(render_template(
                "message.html", title="Please slow down",
                message="We received many requests from your connection in a short time. "
                        "Please wait a minute and try again."), mimetype="text/html")
        response.status_code = 429
        if retry:
            response.headers["Retry-After"] = str(int(retry))
        return response


    @app.errorhandler(OverflowError)
    @app.errorhandler(DataError)
    def value_out_of_range(exc: Exception) -> tuple[Response | str, int]:
        """A number or value the database cannot hold (e.g. an id of 2**80): bad input,
        not a server error. Safety net for every route; the session is rolled back at
        the end of the request."""
        db.session.rollback()
        message = "A value in the request is out of range."
        if request.path.startswith("/api/"):
            return jsonify(error=message, fields={}), 400
        return render_template("message.html", title="Something is not right", message=message), 400

    @app.errorhandler(ValidationError)
    def validation_error(exc: ValidationError) -> tuple[Response | str, int]:
        if wants_json():
            return jsonify(error=exc.message, fields=exc.fields), exc.status
        return render_template("message.html", title="Something is not right",
                               message=exc.message), exc.status

    @app.errorhandler(TokenError)
    def token_error(exc: TokenError) -> tuple[str, int]:
        # Never a dead end: a reader with an old or broken link can ask for a new one.
        return render_template("message.html", title="This link does not work",
                               message=f"{exc} We can email you a new link.",
                               link=(url_for("public.link_form"), "Email me a new link")
                               ), 410 if exc.expired else 404

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
