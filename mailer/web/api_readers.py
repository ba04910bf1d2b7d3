"""API routes for bulk reader data: CSV import and export (on the `api` blueprint,
so they share its bearer-token check)."""

from __future__ import annotations

from flask import Response, jsonify, request, stream_with_context

from mailer.common import ValidationError
from mailer.extensions import db
from mailer.readers import export_readers, import_readers
from mailer.web.api import api


@api.post("/subscribers/import")
def import_subscribers() -> tuple[Response, int]:
    """Body: the CSV file (text/csv). `?consent=true` when consent is on record."""
    if request.mimetype not in ("text/csv", "text/plain", "application/csv"):
        raise ValidationError("Send the CSV file as the body with Content-Type: text/csv.",
                              {"body": "expected text/csv"}, status=415)
    consent_raw = request.args.get("consent", "false").lower()
    if consent_raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ValidationError("consent must be true or false.", {"consent": "not a boolean"})
    report = import_readers(db.session, request.get_data(cache=False),
                                       consent=consent_raw in ("true", "1", "yes"), source="api-import")
    if not report.ok:
        return jsonify(error=f"{len(report.errors)} row(s) are not valid; nothing was imported.",
                       fields={f"line {line}": msg for line, msg in report.errors[:1000]},
                       report=report.as_dict()), 400
    return jsonify(report.as_dict()), 200


@api.get("/subscribers/export")
def export_subscribers() -> Response:
    return Response(stream_with_context(export_readers(db.session)),
                    mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="readers.csv"'})
