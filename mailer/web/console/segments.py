"""Audiences: list, edit the rules (JSON) with a live count."""

from __future__ import annotations

import json

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from mailer.common import ValidationError
from mailer.extensions import db
from mailer.models import Segment
from mailer.segments import FIELDS, checked_definition, count_readers, get_segment, save_segment
from mailer.web.console.auth import editor_required, viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import flash_error

EXAMPLE = {"match": "all", "rules": [{"field": "opened", "op": "within_days", "value": 30}]}


def _form_data() -> dict[str, object]:
    raw = request.form.get("rules", "").strip() or "[]"
    try:
        rules = json.loads(raw)
    except ValueError as exc:
        raise ValidationError("The rules are not valid JSON.", {"rules": "not JSON"}) from exc
    return {"name": request.form.get("name", ""), "match": request.form.get("match", "all"),
            "rules": rules}


def _page(segment: Segment | None, rules: str, match: str, name: str,
          status: int = 200) -> tuple[str, int]:
    return render_template("console/segment.html", segment=segment, rules=rules, match=match,
                           name=name, fields=FIELDS), status


@console.get("/segments")
@viewer_required
def segments() -> str:
    rows = db.session.scalars(select(Segment).order_by(Segment.name)).all()
    counts = {s.id: count_readers(db.session, s.definition) for s in rows}
    return render_template("console/segments.html", segments=rows, counts=counts)


@console.get("/segments/new")
@editor_required
def segment_new() -> tuple[str, int]:
    return _page(None, json.dumps(EXAMPLE["rules"], indent=2), "all", "")


@console.get("/segments/<int:segment_id>")
@viewer_required
def segment_edit(segment_id: int) -> tuple[str, int]:
    segment = get_segment(db.session, segment_id)
    return _page(segment, json.dumps(segment.definition.get("rules", []), indent=2),
                 segment.definition.get("match", "all"), segment.name)


@console.post("/segments/new")
@editor_required
def segment_create() -> WerkzeugResponse | tuple[str, int]:
    return _save(None)


@console.post("/segments/<int:segment_id>")
@editor_required
def segment_save(segment_id: int) -> WerkzeugResponse | tuple[str, int]:
    return _save(get_segment(db.session, segment_id))


def _save(segment: Segment | None) -> WerkzeugResponse | tuple[str, int]:
    try:
        saved = save_segment(db.session, _form_data(), segment)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return _page(segment, request.form.get("rules", ""), request.form.get("match", "all"),
                     request.form.get("name", ""), exc.status)
    flash(f"Audience {saved.name!r} saved.")
    return redirect(url_for("console.segment_edit", segment_id=saved.id))


@console.post("/segments/count")
@viewer_required
def segment_count() -> Response | tuple[Response, int]:
    """Live count for the editor (JSON; the CSRF token travels in X-CSRFToken)."""
    try:
        definition = checked_definition(db.session, _form_data())
    except ValidationError as exc:
        return jsonify(error=exc.message, fields=exc.fields), exc.status
    return jsonify(count=count_readers(db.session, definition))
