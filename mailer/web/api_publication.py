"""`GET /api/v1/publication` (any token) and `PUT /api/v1/publication` (admin token):
the publication's name, logo, colour, website, postal address and language."""

from __future__ import annotations

from typing import Any

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


_PUBLICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 200, "minLength": 1},
        "logo_url": {"type": "string", "format": "uri", "description": "http(s) or empty"},
        "accent_color": {"type": "string", "pattern": "^(#[0-9a-fA-F]{6})?$"},
        "website_url": {"type": "string", "format": "uri", "description": "http(s) or empty"},
        "postal_address": {"type": "string", "maxLength": 500},
        "language": {"type": "string", "description": "BCP 47 tag, e.g. en, de-CH"},
        "from_name": {"type": "string", "maxLength": 200},
        "footer_text": {"type": "string", "maxLength": 1000},
    },
    "additionalProperties": False,
}


def publication_paths() -> dict[str, Any]:
    """The OpenAPI paths of this module (merged into /api/v1/openapi.json)."""
    def answer(code: str, text: str) -> dict[str, Any]:
        return {code: {"description": text, "content": {"application/json": {
            "schema": _PUBLICATION_SCHEMA if code == "200" else {"$ref": "#/components/schemas/Error"}}}}}
    return {"/publication": {
        "get": {"summary": "The publication settings (effective values: saved over environment defaults)",
                "responses": {**answer("200", "OK"), **answer("401", "No or bad token")}},
        "put": {"summary": "Change publication settings (admin token); fields left out keep their "
                           "value, null goes back to the environment default",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _PUBLICATION_SCHEMA}}},
                "responses": {**answer("200", "OK"), **answer("400", "Not a JSON object"),
                              **answer("401", "No or bad token"), **answer("403", "Not an admin"),
                              **answer("422", "A field is refused (named in fields)")}},
    }}
