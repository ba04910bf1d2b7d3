"""Editions: list, the live progress page and its JSON, pause/resume/cancel/approve."""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, jsonify, redirect, render_template, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from mailer import delivery
from mailer import editions as editions_service
from mailer.common import ValidationError
from mailer.console import FINAL_EDITION_STATES, delivery_counts, edition_stats, link_stats
from mailer.extensions import db
from mailer.models import DeliveryStatus, Edition
from mailer.runtime import runtime
from mailer.web.console.auth import editor_required, viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import PAGE_SIZE, flash_error, page_number

FINAL_STATES = ("done", "cancelled", "failed")
PROBLEM_ROWS = 100  # failed/unknown recipients listed on the edition page


def progress_json(edition_id: int, by_zone: bool = False) -> dict[str, object]:
    edition = db.session.get(Edition, edition_id)
    if edition is not None and edition.status in FINAL_EDITION_STATES:
        p = _final_progress(edition)  # counted once, then read from edition_figures
    else:
        p = editions_service.progress(db.session, edition_id, by_zone=by_zone)
    planned = int(p["planned"] or 0)  # type: ignore[call-overload]  # counters are ints
    done = planned - int(p["remaining"])  # type: ignore[call-overload]
    p["done"] = done
    p["percent"] = round(100.0 * done / planned, 1) if planned else (
        100.0 if p["status"] in FINAL_STATES else 0.0)
    p["final"] = p["status"] in FINAL_STATES
    return p


def _final_progress(edition: Edition) -> dict[str, object]:
    counts = delivery_counts(db.session, [edition.id])[edition.id]
    return {
        "id": edition.id, "digest": edition.digest.name, "digest_id": edition.digest_id,
        "status": edition.status, "subject": edition.subject,
        "planned": edition.planned or counts.get("planned", 0),
        **{k: counts.get(k, 0) for k in ("sent", "failed", "unknown", "skipped", "cancelled")},
        "retrying": counts.get(DeliveryStatus.RETRY, 0),
        "remaining": sum(counts.get(s, 0) for s in DeliveryStatus.OUTSTANDING),
        "rate": 0.0, "eta_seconds": None, "error": edition.error,
        "created_at": edition.created_at.isoformat(),
        "started_at": edition.started_at.isoformat() if edition.started_at else None,
        "finished_at": edition.finished_at.isoformat() if edition.finished_at else None,
    }


@console.get("/editions")
@viewer_required
def editions() -> str:
    page = page_number()
    ids = list(db.session.scalars(select(Edition.id).order_by(Edition.id.desc())
                                  .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    rows = edition_stats(db.session, ids[:PAGE_SIZE])
    return render_template("console/editions.html", editions=rows, page=page,
                           more=len(ids) > PAGE_SIZE)


@console.get("/editions/<int:edition_id>")
@viewer_required
def edition(edition_id: int) -> str:
    row = db.get_or_404(Edition, edition_id, description="No such edition.")
    figures = edition_stats(db.session, [edition_id])[0]
    problems, more_problems = delivery.list_deliveries(
        db.session, edition_id, (DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN), per_page=PROBLEM_ROWS)
    return render_template("console/edition.html", edition=row, p=progress_json(edition_id, by_zone=True),
                           figures=figures, links=link_stats(db.session, edition_id),
                           engagement=editions_service.edition_engagement(db.session, edition_id,
                                                                          sent=figures.sent),
                           problems=problems, more_problems=more_problems,
                           ab=editions_service.subject_test_report(db.session, edition_id),
                           retry_states=delivery.RETRY_EDITION_STATES)


@console.get("/editions/<int:edition_id>/progress.json")
@viewer_required
def edition_progress(edition_id: int) -> Response:
    db.get_or_404(Edition, edition_id, description="No such edition.")
    return jsonify(progress_json(edition_id))


def _control(edition_id: int, action: Callable[[], object], done: str) -> Response:
    try:
        action()
        if done:
            flash(done)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
    return redirect(url_for("console.edition", edition_id=edition_id))


@console.post("/editions/<int:edition_id>/pause")
@editor_required
def edition_pause(edition_id: int) -> Response:
    return _control(edition_id, lambda: editions_service.pause_edition(db.session, edition_id), "Paused.")


@console.post("/editions/<int:edition_id>/resume")
@editor_required
def edition_resume(edition_id: int) -> Response:
    return _control(edition_id, lambda: editions_service.resume_edition(
        db.session, runtime().settings, edition_id), "Resumed.")


@console.post("/editions/<int:edition_id>/cancel")
@editor_required
def edition_cancel(edition_id: int) -> Response:
    return _control(edition_id, lambda: editions_service.cancel_edition(db.session, edition_id),
                    "Cancelled: nothing more will be sent.")


@console.post("/editions/<int:edition_id>/approve")
@editor_required
def edition_approve(edition_id: int) -> Response:
    return _control(edition_id, lambda: editions_service.approve_edition(db.session, edition_id),
                    "Approved: the edition is being prepared and sent.")


def _retry(edition_id: int, status: str) -> Response:
    def retry() -> None:
        result = delivery.retry_deliveries(db.session, edition_id, [status],
                                           lanes=runtime().settings.send_lanes)
        flash(f"{result.requeued} {status} recipient(s) will be sent again"
              + (f"; {result.skipped} skipped (unsubscribed or suppressed since)." if result.skipped
                 else "."))
    return _control(edition_id, retry, "")


@console.post("/editions/<int:edition_id>/retry-failed")
@editor_required
def edition_retry_failed(edition_id: int) -> Response:
    """Send again to the recipients whose server refused the message."""
    return _retry(edition_id, DeliveryStatus.FAILED)


@console.post("/editions/<int:edition_id>/retry-unknown")
@editor_required
def edition_retry_unknown(edition_id: int) -> Response:
    """A separate, deliberate choice: these readers may have the message already."""
    return _retry(edition_id, DeliveryStatus.UNKNOWN)
