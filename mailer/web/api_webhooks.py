"""API: outgoing webhook endpoints (Standard Webhooks); the secret is shown once."""

from __future__ import annotations

from flask import Response
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import WebhookEndpoint
from mailer.runtime import runtime
from mailer.web.api import Media, api_blueprint, json_body, route
from mailer.web.api_schemas import WebhookCreated, WebhookIn, WebhookList
from mailer.webhooks import create_endpoint, delete_endpoint, endpoint_json

api_webhooks = api_blueprint("api_webhooks")


@route(api_webhooks, "POST", "/webhooks", "Add an endpoint (its secret is in this answer only)",
       body=WebhookIn, ok={201: WebhookCreated})
def create_webhook(body: WebhookIn) -> tuple[WebhookCreated, int]:
    endpoint = create_endpoint(db.session, json_body(),
                               allow_private=runtime().settings.allow_private_urls)
    return WebhookCreated.model_validate(endpoint_json(endpoint, with_secret=True)), 201


@route(api_webhooks, "GET", "/webhooks", "Endpoints (without secrets)", ok={200: WebhookList})
def list_webhooks() -> WebhookList:
    rows = db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
    return WebhookList.model_validate({"webhooks": [endpoint_json(e) for e in rows]})


@route(api_webhooks, "DELETE", "/webhooks/<int:endpoint_id>", "Remove an endpoint",
       ok={204: Media("text/plain", "empty")})
def remove_webhook(endpoint_id: int) -> Response:
    delete_endpoint(db.session, endpoint_id)
    return Response("", status=204)
