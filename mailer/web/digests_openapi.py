"""OpenAPI entries for the digest, preview, test-send and feed endpoints."""

from __future__ import annotations

from typing import Any


def digest_paths() -> dict[str, Any]:
    from mailer.web.openapi import _EDITION_ID, _TOPICS, _op

    digest_id = [{"name": "digest_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    feed_id = [{"name": "feed_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    preview_params = [
        {"name": "format", "in": "query", "schema": {"enum": ["json", "html", "text", "page"]}},
        {"name": "width", "in": "query", "schema": {"enum": ["desktop", "mobile"]}},
    ]
    return {
        "/digests/{digest_id}": {
            "get": _op("A digest", "200", params=digest_id),
            "post": _op("Change a digest (schedule, topics, approval, ...)", "200", {
                "type": "object",
                "properties": {
                    "name": {"type": "string"}, "topics": _TOPICS, "subject": {"type": "string"},
                    "schedule": {"type": "string"}, "timezone": {"type": "string"},
                    "max_articles": {"type": "integer", "minimum": 1, "maximum": 50},
                    "approval": {"enum": ["auto", "draft"]}, "template": {"type": "string"}}},
                params=digest_id),
        },
        "/digests/{digest_id}/preview": {
            "get": _op("Preview the next edition (JSON, HTML, text or a framed page)", "200",
                       params=digest_id + preview_params),
        },
        "/digests/{digest_id}/test-send": {
            "post": _op("Send a test copy to up to 10 addresses", "200", {
                "type": "object", "required": ["addresses"],
                "properties": {"addresses": {"type": "array", "maxItems": 10,
                                             "items": {"type": "string", "format": "email"}}}},
                params=digest_id),
        },
        "/editions/{edition_id}/preview": {
            "get": _op("Preview an edition (drafts included)", "200",
                       params=_EDITION_ID + preview_params),
        },
        "/editions/{edition_id}/approve": {"post": _op("Approve a draft", "200", params=_EDITION_ID)},
        "/feeds": {
            "get": _op("List feeds with their last fetch status", "200"),
            "post": _op("Add a feed, or change the one with this URL", "201", {
                "type": "object", "required": ["url"],
                "properties": {
                    "url": {"type": "string", "format": "uri"},
                    "topic": {"type": "string"},
                    "category_map": {"type": "object", "additionalProperties": {"type": "string"}},
                    "poll_minutes": {"type": "integer", "minimum": 1, "maximum": 10080}}}),
        },
        "/feeds/{feed_id}/poll": {"post": _op("Fetch a feed now", "200", params=feed_id)},
    }
