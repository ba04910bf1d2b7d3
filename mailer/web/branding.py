"""Every web template gets `publication`: the name, logo, colour and language the
reader pages show (loaded once per request, defaults when the database is down)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, has_request_context, request
from sqlalchemy.exc import SQLAlchemyError

from mailer.extensions import db
from mailer.readers import Publication, load_publication, publication_defaults
from mailer.runtime import runtime

log = logging.getLogger(__name__)


_KEY = "mailer.publication"


def current_publication() -> Publication:
    """Once per request (kept in the WSGI environ, which dies with the request)."""
    store: dict[str, object] = request.environ if has_request_context() else {}
    cached = store.get(_KEY)
    if not isinstance(cached, Publication):
        settings = runtime().settings
        try:
            cached = load_publication(db.session, settings)
        except SQLAlchemyError:
            # Error pages must still render when the database is what failed.
            log.warning("publication settings unavailable; using the environment defaults")
            db.session.rollback()
            cached = publication_defaults(settings)
        store[_KEY] = cached
    return cached


def register_branding(app: Flask) -> None:
    @app.context_processor
    def inject_publication() -> dict[str, Any]:
        return {"publication": current_publication()}
