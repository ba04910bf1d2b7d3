"""Digests: create and edit schedules and topics, preview, test send, send now,
approve drafts."""

from __future__ import annotations

from collections.abc import Sequence

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import escape
from sqlalchemy import select
from werkzeug.wrappers import Response

from mailer.common import ValidationError
from mailer.content import save_digest
from mailer.editions import preview_digest, start_edition, test_send
from mailer.extensions import db
from mailer.mail import TemplateError, digest_layouts
from mailer.models import Digest, Edition, EditionStatus, Segment, Topic
from mailer.runtime import runtime
from mailer.web.console import console
from mailer.web.console.auth import editor_required, viewer_required
from mailer.web.console.helpers import flash_error

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
        "segment": form.get("segment", ""),
    }


def _edit_page(digest: Digest | None, status: int = 200) -> tuple[str, int]:
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
                           templates=digest_layouts(),
                           segments=db.session.scalars(select(Segment).order_by(Segment.name)).all(),
                           drafts=drafts, recent=recent), status


@console.get("/digests")
@viewer_required
def digests() -> str:
    rows = db.session.scalars(select(Digest).order_by(Digest.name)).all()
    drafts = db.session.scalars(select(Edition).where(Edition.status == EditionStatus.DRAFT)
                                .order_by(Edition.id.desc())).all()
    return render_template("console/digests.html", digests=rows, drafts=drafts)


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
        flash_error(exc)
        return _edit_page(None, exc.status)
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
        flash_error(exc)
        return _edit_page(_digest(digest_id), exc.status)
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
    with rt.one_off_sender() as sender:
        try:
            results = test_send(db.session, rt.settings, sender, digest.id, raw)
        except ValidationError as exc:
            flash_error(exc)
            return redirect(url_for("console.digest_preview", digest_id=digest_id))
    addresses = list(results)
    accepted = sum(1 for outcome in results.values() if outcome == "sent")
    flash(f"Test sent: {accepted} of {len(addresses)} accepted by the mail server.",
          "ok" if accepted == len(addresses) else "error")
    return redirect(url_for("console.digest_preview", digest_id=digest_id))


@console.post("/digests/<int:digest_id>/send")
@editor_required
def digest_send(digest_id: int) -> Response:
    digest = _digest(digest_id)
    try:
        edition = start_edition(db.session, digest.id, created_by=current_user.email)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return redirect(url_for("console.digest_edit", digest_id=digest_id))
    flash(f"Edition #{edition.id} started.")
    return redirect(url_for("console.edition", edition_id=edition.id))
