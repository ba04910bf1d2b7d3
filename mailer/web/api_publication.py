"""`GET /api/v1/publication` (any token) and `PUT /api/v1/publication` (admin token):
the publication's name, logo, colour, website, postal address and language."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from mailer.common import ValidationError
from mailer.console import check_token, publication_json, token_is_admin, update_publication
from mailer.extensions import csrf, db
from mailer.readers import load_publication
from mailer.runtime import runtime

api_publication = Blueprint("api_publication", __name__)
csrf.exempt(api_publication)  # bearer tokens, not cookies


def _token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _unauthorised() -> tuple[Response, int]:
    return jsonify(error="missing or invalid API token",
                   fields={"Authorization": "Bearer token required"}), 401


@api_publication.get("/publication")
def get_publication() -> Response | tuple[Response, int]:
    settings = runtime().settings
    if not check_token(db.session, _token(), settings.api_token):
        return _unauthorised()
    return jsonify(publication_json(load_publication(db.session, settings)))


@api_publication.put("/publication")
def put_publication() -> Response | tuple[Response, int]:
    settings = runtime().settings
    token = _token()
    if not check_token(db.session, token, settings.api_token):
        return _unauthorised()
    if not token_is_admin(db.session, token, settings.api_token):
        return jsonify(error="only an admin's token may change the publication settings",
                       fields={"Authorization": "admin token required"}), 403
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object.", {"body": "not a JSON object"})
    return jsonify(publication_json(update_publication(db.session, settings, data,
                                                       updated_by="api")))
