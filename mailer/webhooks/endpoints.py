"""Webhook endpoints as API users and editors manage them."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from sqlalchemy import func, select, update

from mailer.common.errors import NotFound, ValidationError
from mailer.models import WebhookEndpoint, WebhookEvent, WebhookMessage, WebhookStatus, utcnow
from mailer.models.base import DbSession
from mailer.webhooks.http import UnsafeURL, check_url


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def clean_events(raw: object) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise ValidationError("events must be a non-empty list of event types.",
                              {"events": "at least one event type"})
    unknown = sorted({str(e) for e in raw if e not in WebhookEvent.ALL})
    if unknown:
        raise ValidationError(f"Unknown event type(s): {', '.join(unknown)[:300]}.",
                              {"events": f"unknown: {', '.join(unknown)[:300]}"})
    return [e for e in WebhookEvent.ALL if e in raw]


def clean_webhook_url(raw: object, *, allow_private: bool) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("url is required.", {"url": "required"})
    url = raw.strip()
    if len(url) > 2000 or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValidationError("url is not a valid URL.", {"url": "invalid"})
    try:
        check_url(url, allow_private=allow_private)
    except UnsafeURL as exc:
        # The same answer for every refused destination: no map of the inside network.
        raise ValidationError(f"url: {exc}", {"url": str(exc)}) from exc
    return url


def create_endpoint(session: DbSession, data: dict[str, Any], *,
                    allow_private: bool) -> WebhookEndpoint:
    """Validate, then save; commits. The secret is shown in the answer of this call."""
    unknown = sorted(set(data) - {"url", "events"})
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(unknown)}.", {unknown[0]: "unknown field"})
    events = clean_events(data.get("events"))
    url = clean_webhook_url(data.get("url"), allow_private=allow_private)
    endpoint = WebhookEndpoint(url=url, secret=new_secret(), event_types="," + ",".join(events) + ",",
                               enabled=True, disabled_reason="")
    session.add(endpoint)
    session.commit()
    return endpoint


def get_endpoint(session: DbSession, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def delete_endpoint(session: DbSession, endpoint_id: int) -> None:
    session.delete(get_endpoint(session, endpoint_id))  # its messages go with it
    session.commit()


def set_endpoint_enabled(session: DbSession, endpoint_id: int, enabled: bool) -> WebhookEndpoint:
    endpoint = get_endpoint(session, endpoint_id)
    endpoint.enabled = enabled
    if enabled:
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
    else:
        endpoint.disabled_reason = "Disabled by an editor."
    session.commit()
    return endpoint


def send_again(session: DbSession, message_id: int) -> WebhookMessage:
    """Queue one message again (any status) with a fresh retry schedule; the same
    `webhook-id`, so a receiver that saw it before can tell."""
    message = session.get(WebhookMessage, message_id)
    if message is None:
        raise NotFound("No such webhook message.")
    session.execute(update(WebhookMessage).where(WebhookMessage.id == message_id).values(
        status=WebhookStatus.PENDING, attempts=0, next_attempt_at=utcnow(), claimed_by=""))
    session.commit()
    return message


def endpoint_json(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": endpoint.id, "url": endpoint.url, "events": endpoint.events,
        "enabled": endpoint.enabled, "disabled_reason": endpoint.disabled_reason or None,
        "created_at": endpoint.created_at.isoformat(),
    }
    if with_secret:
        data["secret"] = endpoint.secret
    return data


def endpoint_figures(session: DbSession) -> dict[int, dict[str, int]]:
    rows = session.execute(select(WebhookMessage.endpoint_id, WebhookMessage.status, func.count())
                           .group_by(WebhookMessage.endpoint_id, WebhookMessage.status)).all()
    figures: dict[int, dict[str, int]] = {}
    for endpoint_id, status, count in rows:
        figures.setdefault(endpoint_id, {})[status] = count
    return figures
