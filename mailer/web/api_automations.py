"""API: automations (`POST/GET /api/v1/automations`). Its own blueprint with the same
bearer-token check as the rest of the API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from mailer.automations import automation_json, get_automation, save_automation
from mailer.common import ValidationError
from mailer.console import check_token
from mailer.extensions import csrf, db
from mailer.models import Automation
from mailer.runtime import runtime

automations_api = Blueprint("automations_api", __name__)
csrf.exempt(automations_api)  # bearer tokens, not cookies


@automations_api.before_request
def authenticate() -> tuple[Response, int] | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not check_token(
        db.session, token.strip(), runtime().settings.api_token
    ):
        return jsonify(error="missing or invalid API token",
                       fields={"Authorization": "Bearer token required"}), 401
    return None


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object.", {"body": "not a JSON object"})
    return data


@automations_api.post("/automations")
def create_automation() -> tuple[Response, int]:
    automation = save_automation(db.session, _body(), runtime().settings.base_url)
    return jsonify(automation_json(db.session, automation)), 201


@automations_api.get("/automations")
def list_automations() -> Response:
    rows = db.session.scalars(select(Automation).order_by(Automation.name))
    return jsonify(automations=[automation_json(db.session, a) for a in rows])


@automations_api.get("/automations/<int:automation_id>")
def show_automation(automation_id: int) -> Response:
    return jsonify(automation_json(db.session, get_automation(db.session, automation_id)))


@automations_api.put("/automations/<int:automation_id>")
def replace_automation(automation_id: int) -> Response:
    automation = save_automation(db.session, _body(), runtime().settings.base_url,
                                 get_automation(db.session, automation_id))
    return jsonify(automation_json(db.session, automation))
