"""API: outgoing webhook endpoints (`POST/GET /api/v1/webhooks`,
`DELETE /api/v1/webhooks/<id>`). Its own blueprint with the API's bearer-token check."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from mailer.common import ValidationError
from mailer.console import check_token
from mailer.extensions import csrf, db
from mailer.models import WebhookEndpoint
from mailer.runtime import runtime
from mailer.webhooks import create_endpoint, delete_endpoint, endpoint_json

webhooks_api = Blueprint("webhooks_api", __name__)
csrf.exempt(webhooks_api)  # bearer tokens, not cookies


@webhooks_api.before_request
def authenticate() -> tuple[Response, int] | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not check_token(
        db.session, token.strip(), runtime().settings.api_token
    ):
        return jsonify(error="missing or invalid API token",
                       fields={"Authorization": "Bearer token required"}), 401
    return None


@webhooks_api.post("/webhooks")
def create_webhook() -> tuple[Response, int]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object.", {"body": "not a JSON object"})
    endpoint = create_endpoint(db.session, data, allow_private=runtime().settings.allow_private_urls)
    return jsonify(endpoint_json(endpoint, with_secret=True)), 201


@webhooks_api.get("/webhooks")
def list_webhooks() -> Response:
    rows = db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
    return jsonify(webhooks=[endpoint_json(e) for e in rows])


@webhooks_api.delete("/webhooks/<int:endpoint_id>")
def remove_webhook(endpoint_id: int) -> tuple[str, int]:
    delete_endpoint(db.session, endpoint_id)
    return "", 204
