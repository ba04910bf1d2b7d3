"""The "keep me subscribed" link of the re-engagement email (inactive-reader policy).

GET only shows a button: mail scanners fetch links, and a fetch must not count as a
reader's answer. The POST carries the form's CSRF token like every other form.
"""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

from mailer import automations
from mailer.common import Purpose, ValidationError
from mailer.extensions import db, limiter
from mailer.models import Reader, ReaderStatus
from mailer.readers import reader_for_token, reader_link_token
from mailer.runtime import runtime
from mailer.web.public import form_limit

engagement = Blueprint("engagement", __name__)


def _reader(token: str) -> Reader:
    return reader_for_token(db.session, runtime().tokens, Purpose.KEEP, token)


@engagement.get("/keep/<token>")
def keep_page(token: str) -> str:
    reader = _reader(token)
    prefs = reader_link_token(runtime().tokens, Purpose.PREFERENCES, reader)
    return render_template("keep.html", email=reader.email, token=token, done=False,
                           active=reader.status == ReaderStatus.CONFIRMED, prefs_token=prefs)


@engagement.post("/keep/<token>")
@limiter.limit(form_limit)
def keep(token: str) -> tuple[str, int] | str:
    reader = _reader(token)
    prefs = reader_link_token(runtime().tokens, Purpose.PREFERENCES, reader)
    try:
        outcome = automations.keep_subscribed(db.session, reader.id)
    except ValidationError as exc:
        db.session.rollback()
        return render_template("message.html", title="Nothing to keep", message=exc.message,
                               link=(url_for("public.subscribe_form"), "Subscribe again")
                               ), exc.status
    return render_template("keep.html", email=reader.email, token=token, done=True,
                           resumed=outcome == "resumed", active=True, prefs_token=prefs)
