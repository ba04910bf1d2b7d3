"""OpenAPI entries for automations and outgoing webhooks (self-contained: merged into
the document by `mailer.web.openapi`)."""

from __future__ import annotations

from typing import Any

from mailer.automations import MAX_DELAY_MINUTES, MAX_STEPS
from mailer.models import AutomationTrigger, WebhookEvent
from mailer.segments import FIELDS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: str, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "OK", **_json({"type": "object"})}}
    for code, text in (("400", "Bad input"), ("401", "No or bad token"), ("404", "Not found"),
                       ("409", "Conflict")):
        responses[code] = {"description": text, **_json(_ERROR)}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if params:
        op["parameters"] = params
    return op


def integration_paths() -> dict[str, Any]:
    step = {
        "type": "object", "required": ["delay_minutes", "subject", "body_text"],
        "additionalProperties": False,
        "properties": {
            "delay_minutes": {"type": "integer", "minimum": 0, "maximum": MAX_DELAY_MINUTES},
            "subject": {"type": "string", "maxLength": 300},
            "body_text": {"type": "string"},
            "body_mjml": {"type": "string", "description": "blank: the default layout"},
        },
    }
    automation = {
        "type": "object", "required": ["name", "steps"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "trigger": {"enum": list(AutomationTrigger.ALL)},
            "topics": {"type": "array", "items": {"type": "string"}},
            "enabled": {"type": "boolean"},
            "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": step},
        },
    }
    automation_id = [{"name": "automation_id", "in": "path", "required": True,
                      "schema": {"type": "integer"}}]
    endpoint_id = [{"name": "endpoint_id", "in": "path", "required": True,
                    "schema": {"type": "integer"}}]
    rule = {"type": "object", "properties": {
        "field": {"enum": list(FIELDS)}, "op": {"type": "string"}, "value": {},
        "match": {"enum": ["all", "any"]}, "rules": {"type": "array"}}}
    segment = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 200}, "match": {"enum": ["all", "any"]},
        "rules": {"type": "array", "maxItems": 50, "items": rule}}}
    segment_id = [{"name": "segment_id", "in": "path", "required": True,
                   "schema": {"type": "integer"}}]
    delete = _op("Delete a webhook endpoint and its queued calls", "204", params=endpoint_id)
    delete["responses"]["204"] = {"description": "Deleted"}
    return {
        "/automations": {
            "get": _op("Automations with per-step figures (sent, failed, pending, skipped)", "200"),
            "post": _op("Create an automation (a welcome email and follow-ups)", "201", automation),
        },
        "/automations/{automation_id}": {
            "get": _op("An automation", "200", params=automation_id),
            "put": _op("Replace an automation's definition", "200", automation,
                       params=automation_id),
        },
        "/webhooks": {
            "get": _op("Webhook endpoints (without their secrets)", "200"),
            "post": _op("Add an endpoint; the answer holds its signing secret (whsec_...)", "201", {
                "type": "object", "required": ["url", "events"], "additionalProperties": False,
                "properties": {
                    "url": {"type": "string", "format": "uri"},
                    "events": {"type": "array", "minItems": 1,
                               "items": {"enum": list(WebhookEvent.ALL)}}}}),
        },
        "/webhooks/{endpoint_id}": {"delete": delete},
        "/alerts": {
            "post": _op("Send one article now as a breaking-news alert (an edition)", "202", {
                "type": "object", "required": ["article"], "additionalProperties": False,
                "properties": {"article": {"oneOf": [{"type": "integer"}, {"type": "string"}]}}}),
        },
        "/segments": {
            "get": _op("Audiences", "200"),
            "post": _op("Save an audience; the answer holds its reader count", "201",
                        {**segment, "required": ["name", "rules"]}),
        },
        "/segments/count": {
            "post": _op("Count the confirmed readers of rules while editing (nothing saved)", "200",
                        segment),
        },
        "/segments/{segment_id}": {
            "get": _op("An audience with its reader count", "200", params=segment_id),
            "put": _op("Change an audience", "200", {**segment, "required": ["name", "rules"]},
                       params=segment_id),
        },
    }
