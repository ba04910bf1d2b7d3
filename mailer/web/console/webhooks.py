"""Webhook endpoints: list, create, enable/disable, delete, and a delivery log per
endpoint with "send again"."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from mailer.common import ValidationError
from mailer.extensions import db
from mailer.models import WebhookEndpoint, WebhookEvent, WebhookMessage
from mailer.runtime import runtime
from mailer.web.console.auth import admin_required, viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import PAGE_SIZE, flash_error, page_number
from mailer.webhooks import (
    create_endpoint,
    delete_endpoint,
    endpoint_figures,
    get_endpoint,
    send_again,
    set_endpoint_enabled,
)


@console.get("/webhooks")
@viewer_required
def webhooks() -> str:
    rows = db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()
    return render_template("console/webhooks.html", endpoints=rows,
                           figures=endpoint_figures(db.session), events=WebhookEvent.ALL)


@console.post("/webhooks")
@admin_required
def webhook_create() -> Response:
    try:
        endpoint = create_endpoint(
            db.session, {"url": request.form.get("url", ""), "events": request.form.getlist("events")},
            allow_private=runtime().settings.allow_private_urls)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return redirect(url_for("console.webhooks"))
    # Shown once, here and in the API answer: receivers need it to check signatures.
    flash(f"Endpoint created. Its signing secret: {endpoint.secret}")
    return redirect(url_for("console.webhook", endpoint_id=endpoint.id))


@console.get("/webhooks/<int:endpoint_id>")
@viewer_required
def webhook(endpoint_id: int) -> str:
    endpoint = get_endpoint(db.session, endpoint_id)
    page = page_number()
    messages = db.session.scalars(
        select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id)
        .order_by(WebhookMessage.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
    ).all()
    return render_template("console/webhook.html", endpoint=endpoint,
                           messages=messages[:PAGE_SIZE], more=len(messages) > PAGE_SIZE,
                           page=page)


@console.post("/webhooks/<int:endpoint_id>/enabled")
@admin_required
def webhook_toggle(endpoint_id: int) -> Response:
    enabled = request.form.get("enabled") == "1"
    set_endpoint_enabled(db.session, endpoint_id, enabled)
    flash("Endpoint enabled." if enabled else "Endpoint disabled.")
    return redirect(url_for("console.webhook", endpoint_id=endpoint_id))


@console.post("/webhooks/<int:endpoint_id>/delete")
@admin_required
def webhook_delete(endpoint_id: int) -> Response:
    delete_endpoint(db.session, endpoint_id)
    flash("Endpoint deleted.")
    return redirect(url_for("console.webhooks"))


@console.post("/webhooks/<int:endpoint_id>/messages/<int:message_id>/again")
@admin_required
def webhook_send_again(endpoint_id: int, message_id: int) -> Response:
    message = db.session.get(WebhookMessage, message_id)
    if message is None or message.endpoint_id != endpoint_id:
        raise ValidationError("No such message.", status=404)
    send_again(db.session, message_id)
    flash(f"Message {message.msg_id} queued again (same webhook-id).")
    return redirect(url_for("console.webhook", endpoint_id=endpoint_id))
