"""Digests: create and edit schedules and topics, preview, test send, send now,
approve drafts."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from urllib.parse import urlencode

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import escape
from sqlalchemy import select
from werkzeug.wrappers import Response

from mailer.common import ValidationError
from mailer.console import spend_test_sends
from mailer.content import archive_digest, list_digests, restore_digest, save_digest
from mailer.editions import (
    check_subject_test,
    plan_send,
    preview_digest,
    start_edition,
    test_send,
)
from mailer.extensions import db
from mailer.mail import TemplateError, digest_layouts
from mailer.models import Digest, Edition, EditionStatus, Segment, Topic
from mailer.runtime import runtime
from mailer.web.console.auth import editor_required, viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import field_errors, flash_error

# Previews are shown in sandboxed iframes: our own pages may frame them, nothing
# in them may run.
PREVIEW_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src https: http: data:; "
                               "style-src 'unsafe-inline'; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}


def _digest(digest_id: int) -> Digest:
    return db.get_or_404(Digest, digest_id, description="No such digest.")


def _form_data() -> dict[str, object]:
    form = request.form
    return {
        "name": form.get("name"),
        "subject": form.get("subject", ""),
        "topics": form.getlist("topics"),
        "schedule": form.get("schedule", ""),
        "timezone": form.get("timezone") or "UTC",
        "max_articles": form.get("max_articles") or None,
        "approval": form.get("approval", "auto"),
        "template": form.get("template") or "digest",
        "intro": form.get("intro", ""),
        "section_order": form.get("section_order", ""),
        "segment": form.get("segment", ""),
    }


DIGEST_LABELS = {"name": "Name", "subject": "Subject", "topics": "Topics", "schedule": "Schedule",
                 "timezone": "Time zone", "max_articles": "Maximum articles",
                 "approval": "Approval", "template": "Template", "intro": "Intro",
                 "section_order": "Section order"}


def _digest_values(digest: Digest | None) -> dict[str, object]:
    if digest is None:
        return {"timezone": "UTC", "max_articles": "10", "approval": "auto", "template": "digest",
                "topics": []}
    return {"name": digest.name, "subject": digest.subject, "schedule": digest.schedule,
            "timezone": digest.timezone, "max_articles": str(digest.max_articles),
            "approval": digest.approval, "template": digest.template,
            "topics": [t.slug for t in digest.topics], "intro": digest.intro or "",
            "section_order": ", ".join(digest.section_order or [])}


def _typed_values() -> dict[str, object]:
    """What the editor typed, to show again after a validation error."""
    form = request.form
    return {"name": form.get("name", ""), "subject": form.get("subject", ""),
            "schedule": form.get("schedule", ""), "timezone": form.get("timezone", ""),
            "max_articles": form.get("max_articles", ""), "approval": form.get("approval", "auto"),
            "template": form.get("template", "digest"), "topics": form.getlist("topics"),
            "intro": form.get("intro", ""), "section_order": form.get("section_order", "")}


def _edit_page(digest: Digest | None, status: int = 200, values: dict[str, object] | None = None,
               errors: dict[str, str] | None = None) -> tuple[str, int]:
    topics = db.session.scalars(select(Topic).order_by(Topic.name)).all()
    drafts: Sequence[Edition] = []
    recent: Sequence[Edition] = []
    if digest is not None and digest.id:
        drafts = db.session.scalars(select(Edition).where(
            Edition.digest_id == digest.id, Edition.status == EditionStatus.DRAFT)
            .order_by(Edition.id.desc())).all()
        recent = db.session.scalars(select(Edition).where(Edition.digest_id == digest.id)
                                    .order_by(Edition.id.desc()).limit(10)).all()
    return render_template("console/digest.html", digest=digest, topics=topics,
                           templates=digest_layouts(), values=values or _digest_values(digest),
                           segments=db.session.scalars(select(Segment).order_by(Segment.name)).all(),
                           errors=errors or {}, drafts=drafts, recent=recent), status


@console.get("/digests")
@viewer_required
def digests() -> str:
    drafts = db.session.scalars(select(Edition).where(Edition.status == EditionStatus.DRAFT)
                                .order_by(Edition.id.desc())).all()
    return render_template("console/digests.html", digests=list_digests(db.session),
                           archived=list_digests(db.session, archived=True), drafts=drafts)


@console.get("/digests/new")
@editor_required
def digest_new() -> tuple[str, int]:
    return _edit_page(None)


@console.post("/digests/new")
@editor_required
def digest_create() -> Response | tuple[str, int]:
    try:
        digest = save_digest(db.session, _form_data())
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc, DIGEST_LABELS)
        return _edit_page(None, exc.status, _typed_values(), field_errors(exc, DIGEST_LABELS))
    flash(f"Digest {digest.name!r} created.")
    return redirect(url_for("console.digest_edit", digest_id=digest.id))


@console.get("/digests/<int:digest_id>")
@viewer_required
def digest_edit(digest_id: int) -> tuple[str, int]:
    return _edit_page(_digest(digest_id))


@console.post("/digests/<int:digest_id>")
@editor_required
def digest_save(digest_id: int) -> Response | tuple[str, int]:
    digest = _digest(digest_id)
    try:
        save_digest(db.session, _form_data(), digest)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc, DIGEST_LABELS)
        return _edit_page(_digest(digest_id), exc.status, _typed_values(),
                          field_errors(exc, DIGEST_LABELS))
    flash("Digest saved.")
    return redirect(url_for("console.digest_edit", digest_id=digest_id))


@console.get("/digests/<int:digest_id>/preview")
@viewer_required
def digest_preview(digest_id: int) -> str:
    digest = _digest(digest_id)
    preview = None
    error = ""
    try:
        preview = preview_digest(db.session, runtime().settings, digest.id)
    except TemplateError as exc:
        error = str(exc)
    return render_template("console/preview.html", digest=digest, preview=preview, error=error)


@console.get("/digests/<int:digest_id>/preview.html")
@viewer_required
def digest_preview_html(digest_id: int) -> Response:
    preview = preview_digest(db.session, runtime().settings, _digest(digest_id).id)
    return Response(preview.html, mimetype="text/html", headers=PREVIEW_HEADERS)


@console.get("/digests/<int:digest_id>/preview.txt")
@viewer_required
def digest_preview_text(digest_id: int) -> Response:
    preview = preview_digest(db.session, runtime().settings, _digest(digest_id).id)
    return Response(preview.text, mimetype="text/plain", headers=PREVIEW_HEADERS)


@console.get("/digests/<int:digest_id>/preview-text.html")
@viewer_required
def digest_preview_text_framed(digest_id: int) -> Response:
    """The text part as an escaped <pre>, for the preview frame."""
    preview = preview_digest(db.session, runtime().settings, _digest(digest_id).id)
    page = ('<!doctype html><meta charset="utf-8"><pre style="white-space:pre-wrap;'
            'font:14px/1.45 monospace;margin:12px">' + str(escape(preview.text)) + "</pre>")
    return Response(page, mimetype="text/html", headers=PREVIEW_HEADERS)


@console.post("/digests/<int:digest_id>/test-send")
@editor_required
def digest_test_send(digest_id: int) -> Response:
    digest = _digest(digest_id)
    rt = runtime()
    raw = str(request.form.get("addresses", ""))[:2000]
    # The confirmation page of "Send now" offers a last test send and comes back to itself.
    back = url_for("console.digest_send_confirm" if request.form.get("next") == "confirm"
                   else "console.digest_preview", digest_id=digest_id)
    with rt.one_off_sender() as sender:
        try:
            results = test_send(db.session, rt.settings, sender, digest.id, raw,
                                spend=partial(spend_test_sends, rt.settings,
                                              f"editor:{current_user.id}"))
        except ValidationError as exc:
            flash_error(exc)
            return redirect(back)
    addresses = list(results)
    accepted = sum(1 for outcome in results.values() if outcome == "sent")
    flash(f"Test sent: {accepted} of {len(addresses)} accepted by the mail server.",
          "ok" if accepted == len(addresses) else "error")
    return redirect(back)


@console.get("/digests/<int:digest_id>/send")
@viewer_required
def digest_send_confirm(digest_id: int) -> str:
    """"Send now" asks first: how many readers it will reach (a dry run), with a
    last test send."""
    digest = _digest(digest_id)
    segment_id = request.args.get("segment_id", "")[:12]
    try:
        plan = plan_send(db.session, digest.id, segment_id=segment_id)
    except ValidationError as exc:
        flash_error(exc)
        segment_id = ""
        plan = plan_send(db.session, digest.id)
    segments = db.session.execute(select(Segment.id, Segment.name).order_by(Segment.name)).all()
    return render_template("console/send_confirm.html", digest=digest, plan=plan,
                           segments=segments, segment_id=segment_id,
                           tracking=runtime().settings.tracking)


@console.post("/digests/<int:digest_id>/send")
@editor_required
def digest_send(digest_id: int) -> Response:
    digest = _digest(digest_id)
    segment_id = str(request.form.get("segment_id", ""))[:12]
    back = url_for("console.digest_send_confirm", digest_id=digest_id)
    if segment_id:
        back += "?" + urlencode({"segment_id": segment_id})
    if request.form.get("confirmed") != "yes":
        return redirect(back)
    # Blank subject boxes are unused ones: one filled box is a one-subject "test" (refused).
    subjects = [str(request.form.get(f"subject_{n}", ""))[:1000] for n in range(1, 5)]
    subjects = [subject for subject in subjects if subject.strip()]
    try:
        test = check_subject_test(
            subjects, request.form.get("sample_percent", ""), request.form.get("wait_minutes", ""),
            request.form.get("metric", ""), tracking=runtime().settings.tracking)
        edition = start_edition(db.session, digest.id, created_by=current_user.email,
                                segment_id=segment_id, subject_test=test)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return redirect(back if exc.status != 409 else url_for("console.digest_edit", digest_id=digest_id))
    flash(f"Edition #{edition.id} started.")
    return redirect(url_for("console.edition", edition_id=edition.id))


@console.post("/digests/<int:digest_id>/archive")
@editor_required
def digest_archive(digest_id: int) -> Response:
    digest = archive_digest(db.session, _digest(digest_id).id)
    flash(f"Digest {digest.name!r} archived: it is no longer scheduled; its editions stay.", "ok")
    return redirect(url_for("console.digests"))


@console.post("/digests/<int:digest_id>/restore")
@editor_required
def digest_restore(digest_id: int) -> Response:
    digest = restore_digest(db.session, _digest(digest_id).id)
    flash(f"Digest {digest.name!r} restored.", "ok")
    return redirect(url_for("console.digest_edit", digest_id=digest.id))
