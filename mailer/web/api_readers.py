"""API: readers (one at a time, and CSV import and export)."""

from __future__ import annotations

from flask import Response, request, stream_with_context

from mailer.common import ValidationError
from mailer.extensions import db
from mailer.readers import export_readers, import_readers, subscribe
from mailer.web.api import Media, api_blueprint, route
from mailer.web.api_schemas import Error, ImportFailed, ImportQuery, ImportReport, SubscriberIn, SubscriberOut

api_readers = api_blueprint("api_readers")

CSV = Media("text/csv", "CSV with a header row: email,name,topics,frequency")


@route(api_readers, "POST", "/subscribers",
       "Add a reader (confirmed: true only with consent on record)",
       body=SubscriberIn, ok={201: SubscriberOut, 200: SubscriberOut}, errors={409: Error})
def create_subscriber(body: SubscriberIn) -> tuple[SubscriberOut, int]:
    result = subscribe(
        db.session,
        email=body.email,
        name=body.name,
        topics=body.topics,
        frequency=body.frequency,
        source="api",
        ip=request.remote_addr or "",
        confirmed=body.confirmed,
        timezone=body.timezone,
        attributes=body.attributes,
    )
    return SubscriberOut(id=result.reader_id, created=result.created,
                         confirmation_sent=result.confirmation_queued), 201 if result.created else 200


@route(api_readers, "POST", "/subscribers/import",
       "Import readers from CSV; every row or none", body=CSV, query=ImportQuery,
       ok={200: ImportReport}, errors={400: ImportFailed, 415: Error})
def import_subscribers(query: ImportQuery) -> ImportReport | tuple[ImportFailed, int]:
    if request.mimetype not in ("text/csv", "text/plain", "application/csv"):
        raise ValidationError("Send the CSV file as the body with Content-Type: text/csv.",
                              {"body": "expected text/csv"}, status=415)
    report = import_readers(db.session, request.get_data(cache=False), consent=query.consent,
                            source="api-import")
    if not report.ok:
        return ImportFailed(error=f"{len(report.errors)} row(s) are not valid; nothing was imported.",
                            fields={f"line {line}": msg for line, msg in report.errors[:1000]},
                            report=ImportReport.model_validate(report.as_dict())), 400
    return ImportReport.model_validate(report.as_dict())


@route(api_readers, "GET", "/subscribers/export", "Every reader as CSV",
       ok={200: Media("text/csv", "email,name,topics,frequency,status,...")})
def export_subscribers() -> Response:
    return Response(stream_with_context(export_readers(db.session)),
                    mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="readers.csv"'})
