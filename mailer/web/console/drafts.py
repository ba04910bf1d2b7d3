"""A draft edition's stories: pin the lead, move, drop or restore, set the subject."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from mailer.common import ValidationError
from mailer.editions import curate_draft, preview_edition, set_edition_subject
from mailer.extensions import db
from mailer.models import Article, Edition
from mailer.runtime import runtime
from mailer.web.console.auth import editor_required, viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.digests import PREVIEW_HEADERS
from mailer.web.console.helpers import flash_error


@console.get("/editions/<int:edition_id>/stories")
@viewer_required
def draft_stories(edition_id: int) -> str:
    edition = db.get_or_404(Edition, edition_id, description="No such edition.")
    ids = list(edition.article_ids or []) + list(edition.dropped_ids or [])
    by_id = {a.id: a for a in db.session.scalars(select(Article).where(Article.id.in_(ids)))}
    stories = [by_id[i] for i in edition.article_ids or [] if i in by_id]
    dropped = [by_id[i] for i in edition.dropped_ids or [] if i in by_id]
    return render_template("console/draft.html", edition=edition, stories=stories,
                           dropped=dropped)


@console.post("/editions/<int:edition_id>/stories")
@editor_required
def draft_stories_change(edition_id: int) -> Response:
    db.get_or_404(Edition, edition_id, description="No such edition.")
    try:
        if "subject" in request.form:
            set_edition_subject(db.session, edition_id, request.form.get("subject", ""))
            flash("Subject saved.", "ok")
        else:
            curate_draft(db.session, edition_id, str(request.form.get("action", "")),
                         request.form.get("article", ""))
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
    return redirect(url_for("console.draft_stories", edition_id=edition_id))


@console.get("/editions/<int:edition_id>/preview.html")
@viewer_required
def edition_preview_html(edition_id: int) -> Response:
    """The edition's email as it stands (a draft: with the editor's order, drops and
    subject), shown in a sandboxed frame."""
    db.get_or_404(Edition, edition_id, description="No such edition.")
    preview = preview_edition(db.session, runtime().settings, edition_id)
    return Response(preview.html, mimetype="text/html", headers=PREVIEW_HEADERS)
