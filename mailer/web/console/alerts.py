"""Send an article as a breaking-news alert from its console page."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from mailer.alerts import send_alert
from mailer.common import ValidationError
from mailer.extensions import db
from mailer.runtime import runtime
from mailer.web.console.auth import editor_required
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import flash_error


@console.post("/articles/<int:article_id>/alert")
@editor_required
def article_alert(article_id: int) -> Response:
    try:
        edition = send_alert(db.session, runtime().settings, article_id,
                             created_by=current_user.email)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return redirect(url_for("console.article", article_id=article_id))
    flash(f"Alert sending to {edition.planned} reader(s).")
    return redirect(url_for("console.edition", edition_id=edition.id))
