"""Outgoing webhooks (Standard Webhooks): endpoints, and the signed, retried delivery
of the outbox that `mailer.readers.events.emit_event` writes.
"""

from mailer.webhooks.endpoints import (
    create_endpoint,
    delete_endpoint,
    endpoint_figures,
    endpoint_json,
    get_endpoint,
    send_again,
    set_endpoint_enabled,
)
from mailer.webhooks.http import PostResult, UnsafeURL, check_url
from mailer.webhooks.sending import (
    WebhookReport,
    deliver_due,
    due_count,
    purge_finished,
    sign,
    signed_headers,
)

__all__ = [
    "PostResult",
    "UnsafeURL",
    "WebhookReport",
    "check_url",
    "create_endpoint",
    "delete_endpoint",
    "deliver_due",
    "due_count",
    "endpoint_figures",
    "endpoint_json",
    "get_endpoint",
    "purge_finished",
    "send_again",
    "set_endpoint_enabled",
    "sign",
    "signed_headers",
]
