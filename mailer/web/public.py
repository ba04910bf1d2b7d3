"""What readers see: signup, confirmation, preferences, unsubscribe (archive: editions_public.py)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request
from sqlalchemy import select, text

from mailer.extensions import csrf, db, limiter
from mailer.models import (
    Frequency,
    Reader,
    ReaderStatus,
    Topic,
)
from mailer.runtime import runtime
from mailer.services import subscriptions
from mailer.services.errors import ValidationError
from mailer.services.tokens import Purpose, TokenError

public = Blueprint("public", __name__)


def _topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.name)))


@public.get("/")
def index() -> str:
    return render_template("subscribe.html", topics=_topics(), values={}, errors={})


@public.get("/subscribe")
def subscribe_form() -> str:
    return render_template("subscribe.html", topics=_topics(), values={}, errors={})


@public.post("/subscribe")
@limiter.limit("20 per minute;200 per hour", methods=["POST"])
def subscribe() -> tuple[str, int] | str:
    form = request.form
    values = {"email": form.get("email", ""), "name": form.get("name", ""),
              "topics": form.getlist("topics"), "frequency": form.get("frequency") or None}
    try:
        subscriptions.subscribe(
            db.session,
            email=values["email"],
            name=values["name"],
            topics=values["topics"],
            frequency=values["frequency"],
            source=f"form:{form.get('source', 'subscribe')}"[:200],
            ip=request.remote_addr or "",
        )
    except ValidationError as exc:
        db.session.rollback()
        return render_template("subscribe.html", topics=_topics(), values=values,
                               errors=exc.fields or {"email": exc.message},
                               message=exc.message), 422
    # The same answer for new, pending and confirmed addresses: no enumeration.
    return render_template("message.html", title="Check your inbox",
                           message="If this address can receive our newsletter, a message "
                                   "with a confirmation link is on its way. The link is "
                                   "valid for 48 hours.")


@public.get("/confirm/<token>")
def confirm(token: str) -> str:
    reader = subscriptions.confirm(db.session, runtime().tokens, token)
    prefs = runtime().tokens.make(Purpose.PREFERENCES, {"r": reader.id})
    return render_template("message.html", title="You are subscribed",
                           message="Thank you: your subscription is confirmed.",
                           link=(f"/preferences/{prefs}", "Choose topics and frequency"))


def _unsubscribe_reader(token: str) -> Reader:
    reader_id = runtime().tokens.reader_id(Purpose.UNSUBSCRIBE, token)
    reader = db.session.get(Reader, reader_id)
    if reader is None:
        raise TokenError("This link is no longer valid.")
    return reader


@public.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> str:
    # Link scanners fetch GETs: this page only shows a button.
    reader = _unsubscribe_reader(token)
    return render_template("unsubscribe.html", reader=reader, token=token, done=False)


@public.post("/unsubscribe/<token>")
@csrf.exempt  # RFC 8058 one-click: the signed token is the authorisation
def unsubscribe(token: str) -> tuple[str, int] | str:
    reader = _unsubscribe_reader(token)
    subscriptions.unsubscribe(
        db.session, reader.id,
        source="one-click" if request.form.get("List-Unsubscribe") == "One-Click" else "page",
    )
    prefs = runtime().tokens.make(Purpose.PREFERENCES, {"r": reader.id})
    return render_template("unsubscribe.html", reader=reader, token=token, done=True,
                           prefs_token=prefs)


@public.route("/preferences/<token>", methods=["GET", "POST"])
def preferences(token: str) -> str | tuple[str, int]:
    reader_id = runtime().tokens.reader_id(Purpose.PREFERENCES, token)
    reader = db.session.get(Reader, reader_id)
    if reader is None:
        raise TokenError("This link is no longer valid.")
    message = ""
    errors: dict[str, str] = {}
    if request.method == "POST":
        action = request.form.get("action", "save")
        try:
            if action == "resubscribe":
                subscriptions.subscribe(db.session, email=reader.email, name=reader.name,
                                        source="preferences", ip=request.remote_addr or "")
                message = "We sent you a new confirmation link."
            else:
                subscriptions.update_preferences(
                    db.session, reader.id,
                    name=request.form.get("name", ""),
                    topics=request.form.getlist("topics"),
                    frequency=request.form.get("frequency"),
                )
                message = "Your preferences are saved."
        except ValidationError as exc:
            db.session.rollback()
            errors, message = exc.fields, exc.message
        db.session.refresh(reader)
    status = 422 if errors else 200
    return render_template("preferences.html", reader=reader, topics=_topics(), token=token,
                           frequencies=Frequency.ALL, message=message, errors=errors,
                           chosen={t.slug for t in reader.topics},
                           subscribed=reader.status == ReaderStatus.CONFIRMED), status


@public.get("/healthz")
def healthz() -> tuple[Response, int]:
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        database = "unreachable"
    status = "ok" if database == "ok" else "degraded"
    return jsonify(status=status, database=database), 200 if status == "ok" else 503
