"""API: editions (start, list, progress, control, approval, preview) and their ledger."""

from __future__ import annotations

from flask import Response

from mailer import delivery
from mailer import editions as editions_service
from mailer.extensions import db
from mailer.runtime import runtime
from mailer.web.api import api_blueprint, route
from mailer.web.api_digests import PREVIEW, preview_response
from mailer.web.api_schemas import (
    DeliveriesQuery,
    DeliveryList,
    EditionIn,
    EditionList,
    EditionOut,
    EditionsQuery,
    Error,
    PreviewOut,
    PreviewQuery,
    RetryIn,
    RetryOut,
)

api_editions = api_blueprint("api_editions")
CONFLICT = {409: Error}


def edition_out(edition_id: int, by_zone: bool = False) -> EditionOut:
    row = editions_service.progress(db.session, edition_id, by_zone=by_zone)
    answer = editions_service.with_engagement(db.session, [row])[0]
    test = editions_service.subject_test_report(db.session, edition_id)
    if test is not None:  # only A/B editions carry the key
        answer["subject_test"] = test
    return EditionOut.model_validate(answer)


@route(api_editions, "POST", "/editions", "Compile and start sending an edition now",
       body=EditionIn, ok={202: EditionOut}, errors={404: Error, 409: Error},
       description="409 when the digest has no confirmed readers, no new articles, or no "
                   "reader is owed any of them; nothing is created then. With `subjects`, "
                   "an A/B test: a sample gets the subjects at once, the rest the winner "
                   "after `wait_minutes` (400 naming `subjects` when tracking is off).")
def create_edition(body: EditionIn) -> tuple[EditionOut, int]:
    test = editions_service.check_subject_test(
        body.subjects, body.sample_percent, body.wait_minutes, body.metric,
        tracking=runtime().settings.tracking)
    edition = editions_service.start_edition(db.session, body.digest, created_by="api",
                                             segment_id=body.segment_id, subject_test=test)
    return edition_out(edition.id), 202


@route(api_editions, "GET", "/editions", "Editions, newest first, with their counters",
       query=EditionsQuery, ok={200: EditionList})
def list_editions(query: EditionsQuery) -> EditionList:
    rows, more = editions_service.list_editions(db.session, query.page)
    return EditionList.model_validate({"editions": editions_service.with_engagement(db.session, rows),
                                       "page": query.page,
                                       "next_page": query.page + 1 if more else None})


@route(api_editions, "GET", "/editions/<int:edition_id>", "An edition's progress", ok={200: EditionOut})
def get_edition(edition_id: int) -> EditionOut:
    return edition_out(edition_id, by_zone=True)


@route(api_editions, "POST", "/editions/<int:edition_id>/pause", "Pause a sending edition",
       ok={200: EditionOut}, errors=CONFLICT)
def pause(edition_id: int) -> EditionOut:
    editions_service.pause_edition(db.session, edition_id)
    return edition_out(edition_id)


@route(api_editions, "POST", "/editions/<int:edition_id>/resume", "Resume a paused edition",
       ok={200: EditionOut}, errors=CONFLICT)
def resume(edition_id: int) -> EditionOut:
    editions_service.resume_edition(db.session, runtime().settings, edition_id)
    return edition_out(edition_id)


@route(api_editions, "POST", "/editions/<int:edition_id>/cancel",
       "Cancel: nothing more is sent", ok={200: EditionOut}, errors=CONFLICT)
def cancel(edition_id: int) -> EditionOut:
    editions_service.cancel_edition(db.session, edition_id)
    return edition_out(edition_id)


@route(api_editions, "POST", "/editions/<int:edition_id>/approve", "Approve a draft",
       ok={200: EditionOut}, errors=CONFLICT)
def approve(edition_id: int) -> EditionOut:
    editions_service.approve_edition(db.session, edition_id)
    return edition_out(edition_id)


@route(api_editions, "GET", "/editions/<int:edition_id>/preview", "Preview an edition (drafts included)",
       query=PreviewQuery, ok={200: PREVIEW})
def preview_edition(edition_id: int, query: PreviewQuery) -> PreviewOut | Response:
    return preview_response(
        editions_service.preview_edition(db.session, runtime().settings, edition_id), query)


@route(api_editions, "GET", "/editions/<int:edition_id>/deliveries",
       "The edition's ledger rows: reader address, status, SMTP code, error and times",
       query=DeliveriesQuery, ok={200: DeliveryList})
def deliveries(edition_id: int, query: DeliveriesQuery) -> DeliveryList:
    statuses = [query.status] if query.status else []
    rows, more = delivery.list_deliveries(db.session, edition_id, statuses, query.page)
    return DeliveryList.model_validate({"edition_id": edition_id, "deliveries": rows, "page": query.page,
                                        "next_page": query.page + 1 if more else None})


@route(api_editions, "POST", "/editions/<int:edition_id>/retry",
       "Send failed and/or unknown rows again", body=RetryIn, ok={202: RetryOut}, errors=CONFLICT,
       description="Never touches a sent row. Readers who unsubscribed or were suppressed "
                   "since are skipped. A finished edition goes back to sending.")
def retry(edition_id: int, body: RetryIn) -> tuple[RetryOut, int]:
    result = delivery.retry_deliveries(db.session, edition_id, body.statuses,
                                       lanes=runtime().settings.send_lanes)
    return RetryOut(requeued=result.requeued, skipped=result.skipped), 202
