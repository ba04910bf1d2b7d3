"""API: breaking-news alerts (`POST /api/v1/alerts {article: id-or-url}`)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from mailer.alerts import send_alert
from mailer.common import ValidationError
from mailer.console import check_token
from mailer.extensions import csrf, db
from mailer.runtime import runtime

alerts_api = Blueprint("alerts_api", __name__)
csrf.exempt(alerts_api)  # bearer tokens, not cookies


@alerts_api.before_request
def authenticate() -> tuple[Response, int] | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not check_token(
        db.session, token.strip(), runtime().settings.api_token
    ):
        return jsonify(error="missing or invalid API token",
                       fields={"Authorization": "Bearer token required"}), 401
    return None


@alerts_api.post("/alerts")
def create_alert() -> tuple[Response, int]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object.", {"body": "not a JSON object"})
    unknown = sorted(set(data) - {"article"})
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(unknown)}.", {unknown[0]: "unknown field"})
    edition = send_alert(db.session, runtime().settings, data.get("article"), created_by="api")
    return jsonify(id=edition.id, status=edition.status, planned=edition.planned,
                   subject=edition.subject), 202
