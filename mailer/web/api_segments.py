"""API: audiences (`/api/v1/segments`) and their live count."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from mailer.common import ValidationError
from mailer.console import check_token
from mailer.extensions import csrf, db
from mailer.models import Segment
from mailer.runtime import runtime
from mailer.segments import checked_definition, count_readers, get_segment, save_segment, segment_json

segments_api = Blueprint("segments_api", __name__)
csrf.exempt(segments_api)  # bearer tokens, not cookies


@segments_api.before_request
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


@segments_api.post("/segments")
def create_segment() -> tuple[Response, int]:
    return jsonify(segment_json(db.session, save_segment(db.session, _body()))), 201


@segments_api.get("/segments")
def list_segments() -> Response:
    rows = db.session.scalars(select(Segment).order_by(Segment.name))
    return jsonify(segments=[segment_json(db.session, s, with_count=False) for s in rows])


@segments_api.get("/segments/<int:segment_id>")
def show_segment(segment_id: int) -> Response:
    return jsonify(segment_json(db.session, get_segment(db.session, segment_id)))


@segments_api.put("/segments/<int:segment_id>")
def change_segment(segment_id: int) -> Response:
    segment = save_segment(db.session, _body(), get_segment(db.session, segment_id))
    return jsonify(segment_json(db.session, segment))


@segments_api.post("/segments/count")
def count_segment() -> Response:
    """The live count while editing: `{match, rules}` → `{count}` (nothing saved)."""
    data = {k: v for k, v in _body().items() if k != "name"}
    return jsonify(count=count_readers(db.session, checked_definition(db.session, data)))
