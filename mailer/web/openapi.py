"""The OpenAPI 3.1 description of the JSON API (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from mailer.web.digests_openapi import digest_paths
from mailer.web.integrations_openapi import integration_paths

_ERROR = {"$ref": "#/components/schemas/Error"}
_TOPICS = {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: str, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "OK", **_json({"type": "object"})},
            "400": {"description": "Bad input", **_json(_ERROR)},
            "401": {"description": "No or bad token", **_json(_ERROR)},
            "404": {"description": "Not found", **_json(_ERROR)},
            "409": {"description": "Conflict", **_json(_ERROR)},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if params:
        op["parameters"] = params
    return op


def _csv_import() -> dict[str, Any]:
    op = _op("Import readers from CSV (email,name,topics,frequency); all rows or none", "200",
             params=[{"name": "consent", "in": "query", "schema": {"type": "boolean"}}])
    op["requestBody"] = {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    op["responses"]["415"] = {"description": "Not CSV", **_json(_ERROR)}
    return op


_EDITION_ID = [{"name": "edition_id", "in": "path", "required": True,
                "schema": {"type": "integer"}}]


def openapi_document() -> dict[str, Any]:
    article = {
        "type": "object",
        "required": ["url", "title"],
        "properties": {
            "url": {"type": "string", "format": "uri"},
            "title": {"type": "string", "maxLength": 500},
            "author": {"type": "string"},
            "published_at": {"type": "string", "format": "date-time"},
            "summary": {"type": "string"},
            "body_html": {"type": "string"},
            "image_url": {"type": "string", "format": "uri"},
            "topics": _TOPICS,
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Digest mailer API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "fields": {"type": "object"}},
                }
            },
        },
        "paths": {
            "/articles": {
                "get": _op("List recent articles", "200", params=[
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}}]),
                "post": _op("Create or update an article (idempotent on url)", "201", article),
            },
            "/topics": {
                "get": _op("List topics", "200"),
                "post": _op("Create a topic", "201", {
                    "type": "object", "required": ["slug", "name"],
                    "properties": {"slug": {"type": "string"}, "name": {"type": "string"}}}),
            },
            "/subscribers": {
                "post": _op("Add a reader (confirmed: true only with consent on record)", "201", {
                    "type": "object", "required": ["email"],
                    "properties": {
                        "email": {"type": "string", "format": "email"},
                        "name": {"type": "string"}, "topics": _TOPICS,
                        "frequency": {"enum": ["immediate", "daily", "weekly", "paused"]},
                        "confirmed": {"type": "boolean"}}}),
            },
            "/subscribers/import": {"post": _csv_import()},
            "/subscribers/export": {"get": {
                "summary": "All readers as CSV", "responses": {
                    "200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                    "401": {"description": "No or bad token", **_json(_ERROR)}}}},
            "/digests": {
                "get": _op("List digests", "200"),
                "post": _op("Create a digest", "201", {
                    "type": "object", "required": ["name"],
                    "properties": {
                        "name": {"type": "string"}, "topics": _TOPICS,
                        "schedule": {"type": "string"}, "timezone": {"type": "string"},
                        "max_articles": {"type": "integer", "minimum": 1, "maximum": 50},
                        "approval": {"enum": ["auto", "draft"]}}}),
            },
            "/editions": {
                "post": _op("Compile and start sending an edition now", "202", {
                    "type": "object", "required": ["digest"],
                    "properties": {"digest": {"type": ["string", "integer"]}}}),
            },
            "/editions/{edition_id}": {"get": _op("Edition progress", "200", params=_EDITION_ID)},
            "/editions/{edition_id}/pause": {"post": _op("Pause", "200", params=_EDITION_ID)},
            "/editions/{edition_id}/resume": {"post": _op("Resume", "200", params=_EDITION_ID)},
            "/editions/{edition_id}/cancel": {"post": _op("Cancel", "200", params=_EDITION_ID)},
            **digest_paths(),
            **integration_paths(),
        },
    }
