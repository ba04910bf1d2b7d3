"""Webhooks for bounces and complaints: POST /webhooks/bounces (generic JSON)
and POST /webhooks/ses (Amazon SES notifications delivered by SNS).

Not browser forms, so CSRF-exempt; authenticated instead by the shared secret
MAILER_BOUNCE_WEBHOOK_SECRET, given as `Authorization: Bearer <secret>`, an
`X-Webhook-Secret` header, the password of HTTP basic auth (how SNS sends it:
`https://user:<secret>@host/webhooks/ses`); never in the query string (access logs).
`/webhooks/ses` also accepts, without a secret, messages whose SNS signature
checks out for a topic listed in MAILER_SNS_TOPIC_ARNS (services/py).
Configured with neither, both endpoints refuse everything.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from mailer.common import ValidationError
from mailer.delivery import (
    apply_events,
    confirm_sns_subscription,
    parse_generic,
    parse_json,
    parse_ses,
    verify_sns_message,
)
from mailer.extensions import csrf, db
from mailer.runtime import runtime

log = logging.getLogger(__name__)

webhooks = Blueprint("webhooks", __name__)
csrf.exempt(webhooks)


def _presented_secret() -> str:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if request.authorization is not None and request.authorization.password:
        return request.authorization.password
    # Headers only: a secret in the query string ends up in access logs.
    return request.headers.get("X-Webhook-Secret", "")


@webhooks.before_request
def authenticate() -> tuple[Response, int] | None:
    settings = runtime().settings
    secret, presented = settings.bounce_webhook_secret, _presented_secret()
    if secret and presented and hmac.compare_digest(presented.encode(), secret.encode()):
        return None
    if request.endpoint == "webhooks.ses" and settings.sns_topic_arns and not presented:
        g.sns_signature_required = True  # checked once the body is parsed
        return None
    if not secret:
        return jsonify(error="bounce webhooks are not configured (MAILER_BOUNCE_WEBHOOK_SECRET"
                             + (", or MAILER_SNS_TOPIC_ARNS for signed SNS messages)"
                                if request.endpoint == "webhooks.ses" else ")"),
                       fields={}), 403
    return jsonify(error="missing or wrong webhook secret",
                   fields={"Authorization": "shared secret required"}), 401


@webhooks.errorhandler(ValidationError)
def invalid(exc: ValidationError) -> tuple[Response, int]:
    return jsonify(error=exc.message, fields=exc.fields), exc.status


@webhooks.post("/bounces")
def generic() -> tuple[Response, int]:
    events = parse_generic(parse_json(request.get_data()))
    counts = apply_events(db.session, events, "webhook")
    return jsonify(status="ok", **counts), 200


@webhooks.post("/ses")
def ses() -> tuple[Response, int]:
    # SNS posts JSON with Content-Type text/plain: read the raw body.
    envelope = parse_json(request.get_data())
    if not isinstance(envelope, dict):
        raise ValidationError("The body must be a JSON object.", {"body": "not an object"})
    if g.get("sns_signature_required"):
        verify_sns_message(envelope, runtime().settings.sns_topic_arns)
    kind = envelope.get("Type") or request.headers.get("x-amz-sns-message-type")
    if kind == "SubscriptionConfirmation":
        topic = confirm_sns_subscription(envelope)
        log.info("confirmed the SNS subscription to %s", topic)
        return jsonify(status="subscription confirmed", topic=topic), 200
    if kind == "UnsubscribeConfirmation":
        return jsonify(status="ignored"), 200
    if kind != "Notification":
        raise ValidationError("Type must be Notification or SubscriptionConfirmation.",
                              {"Type": "unsupported"})
    message: Any = envelope.get("Message")
    if isinstance(message, str):
        message = parse_json(message.encode())
    counts = apply_events(db.session, parse_ses(message), "ses")
    return jsonify(status="ok", **counts), 200
