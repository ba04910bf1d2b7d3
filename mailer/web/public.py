"""What readers see: signup (form and embeddable snippet), confirmation,
preferences (topics, frequency, pause, name, address, data download, erasure),
unsubscribe. (The archive lives in editions_public.py.)

The embeddable snippet is a plain HTML form other pages of the site include. It
posts, without a CSRF token, to `/subscribe/embed`, which changes nothing: it
answers with a page of ours showing the address and a "Confirm" button that
carries a fresh CSRF token and posts to `/subscribe`. A forged cross-site post
therefore cannot subscribe anyone, and the page cannot be framed
(X-Frame-Options DENY) to trick a click.
"""

from __future__ import annotations

import json
import time

from flask import (
    Blueprint,
    Response,
    jsonify,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select, text

from mailer import readers as readers_service
from mailer.common import Purpose, TokenError, ValidationError, clean_email
from mailer.extensions import csrf, db, limiter
from mailer.models import (
    Frequency,
    Reader,
    ReaderStatus,
    Topic,
)
from mailer.readers import confirm_change, erase_reader, export_reader, request_change
from mailer.runtime import runtime

public = Blueprint("public", __name__)

SIGNUP_ANSWER = ("If this address can receive our newsletter, a message with a confirmation "
                 "link is on its way. The link is valid for 48 hours.")
FREQUENCY_LABELS = {"immediate": "With every edition", "daily": "At most daily",
                    "weekly": "Weekly", "paused": "Paused (nothing until I resume)"}


def signup_limit() -> str:
    return runtime().settings.signup_rate_limit


def form_limit() -> str:
    return runtime().settings.form_rate_limit


def _topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.name)))


def _form_values() -> dict[str, object]:
    form = request.form
    return {"email": form.get("email", ""), "name": form.get("name", ""),
            "topics": form.getlist("topics"), "frequency": form.get("frequency") or None,
            "source": form.get("source", "subscribe")}


def _subscribe_form(values: dict[str, object], errors: dict[str, str], message: str = "",
                    status: int = 200) -> tuple[str, int]:
    return render_template("subscribe.html", topics=_topics(), values=values, errors=errors,
                           message=message, frequencies=FREQUENCY_LABELS), status


@public.get("/")
def index() -> tuple[str, int]:
    return _subscribe_form({}, {})


@public.get("/subscribe")
def subscribe_form() -> tuple[str, int]:
    return _subscribe_form({}, {})


@public.post("/subscribe")
@limiter.shared_limit(signup_limit, scope="signup", methods=["POST"])
def subscribe() -> tuple[str, int]:
    started = time.monotonic()
    values = _form_values()
    try:
        readers_service.subscribe(
            db.session,
            email=values["email"],
            name=values["name"],
            topics=values["topics"],
            frequency=values["frequency"],
            source=f"form:{values['source']}"[:200],
            ip=request.remote_addr or "",
        )
    except ValidationError as exc:
        db.session.rollback()
        return _subscribe_form(values, exc.fields or {"email": exc.message}, exc.message, 422)
    # The same answer for new, pending, confirmed and suppressed addresses, and in
    # roughly the same time: no enumeration.
    remaining = runtime().settings.signup_min_seconds - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    return render_template("message.html", title="Check your inbox", message=SIGNUP_ANSWER), 200


@public.post("/subscribe/embed")
@csrf.exempt  # writes nothing: it only shows our own confirm page with a fresh CSRF token
@limiter.shared_limit(signup_limit, scope="signup", methods=["POST"])
def subscribe_embed() -> tuple[str, int]:
    values = _form_values()
    try:
        clean_email(values["email"])
    except ValidationError as exc:
        return _subscribe_form(values, exc.fields, exc.message, 422)
    known = {t.slug for t in _topics()}
    chosen = values["topics"]
    values["topics"] = [t for t in chosen if t in known] if isinstance(chosen, list) else []
    if values["frequency"] not in Frequency.ALL:
        values["frequency"] = Frequency.IMMEDIATE
    return render_template("embed_confirm.html", values=values,
                           frequency_label=FREQUENCY_LABELS[str(values["frequency"])]), 200


@public.get("/subscribe/snippet")
def snippet() -> Response:
    """The HTML to paste into other pages of the site."""
    html = render_template("embed_snippet.html", base_url=runtime().settings.base_url,
                           topics=_topics())
    return Response(html, mimetype="text/plain")


@public.get("/confirm/<token>")
def confirm(token: str) -> str:
    result = readers_service.confirm(db.session, runtime().tokens, token)
    if result.already:
        # A used link grants nothing more: no preferences link here.
        return render_template("message.html", title="Already confirmed",
                               message="This link was already used: your subscription is active. "
                                       "Every digest has a link to your preferences.")
    prefs = runtime().tokens.make(Purpose.PREFERENCES, {"r": result.reader.id})
    return render_template("message.html", title="You are subscribed",
                           message="Thank you: your subscription is confirmed.",
                           link=(url_for("public.preferences", token=prefs),
                                 "Choose topics and frequency"))


@public.get("/change-email/<token>")
def change_email(token: str) -> str:
    reader = confirm_change(db.session, runtime().tokens, token)
    prefs = runtime().tokens.make(Purpose.PREFERENCES, {"r": reader.id})
    return render_template("message.html", title="Address changed",
                           message=f"Your digests now go to {reader.email}.",
                           link=(url_for("public.preferences", token=prefs), "Your preferences"))


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
    return render_template("unsubscribe.html", email=reader.email, token=token, done=False)


@public.post("/unsubscribe/<token>")
@csrf.exempt  # RFC 8058 one-click: the signed token is the authorisation
def unsubscribe(token: str) -> tuple[str, int] | str:
    reader_id = runtime().tokens.reader_id(Purpose.UNSUBSCRIBE, token)
    email = readers_service.unsubscribe_by_link(
        db.session, reader_id,
        source="one-click" if request.form.get("List-Unsubscribe") == "One-Click" else "page",
    )
    if email is None:
        raise TokenError("This link is no longer valid.")
    prefs = runtime().tokens.make(Purpose.PREFERENCES, {"r": reader_id})
    return render_template("unsubscribe.html", email=email, token=token, done=True,
                           prefs_token=prefs)


def _preferences_reader(token: str) -> Reader:
    reader = db.session.get(Reader, runtime().tokens.reader_id(Purpose.PREFERENCES, token))
    if reader is None:
        raise TokenError("This link is no longer valid.")
    return reader


@public.get("/preferences/<token>/data.json")
def preferences_data(token: str) -> Response:
    reader = _preferences_reader(token)
    body = json.dumps(export_reader(db.session, reader.id), indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": 'attachment; filename="my-newsletter-data.json"',
        "Cache-Control": "no-store"})


@public.route("/preferences/<token>", methods=["GET", "POST"])
@limiter.limit(form_limit, methods=["POST"])
def preferences(token: str) -> str | tuple[str, int] | Response:
    reader = _preferences_reader(token)
    message = ""
    errors: dict[str, str] = {}
    if request.method == "POST":
        action = request.form.get("action", "save")
        try:
            if action == "erase":
                if request.form.get("confirm_erase") != "yes":
                    raise ValidationError("Tick the box to confirm that you want everything deleted.",
                                          {"confirm_erase": "required"})
                erase_reader(db.session, reader.id)
                return render_template("message.html", title="Your data is deleted",
                                       message="We deleted your subscription and everything we "
                                               "knew about you. We keep only a one-way fingerprint "
                                               "of the address so that it is never added again.")
            if action == "resubscribe":
                readers_service.subscribe(db.session, email=reader.email, name=reader.name,
                                        source="preferences", ip=request.remote_addr or "")
                message = "We sent you a new confirmation link."
            elif action == "change-email":
                request_change(db.session, reader.id, request.form.get("new_email"))
                message = ("If the new address can receive our newsletter, we sent a confirmation "
                           "link to it. Until you click it, digests keep going to your current address.")
            elif action == "save":
                readers_service.update_preferences(
                    db.session, reader.id,
                    name=request.form.get("name", ""),
                    topics=request.form.getlist("topics"),
                    frequency=request.form.get("frequency"),
                    alerts=request.form.get("alerts") == "on",
                )
                message = "Your preferences are saved."
            else:
                raise ValidationError("Unknown action.", {"action": "unknown"})
        except ValidationError as exc:
            db.session.rollback()
            errors, message = exc.fields or {"form": exc.message}, exc.message
        db.session.refresh(reader)
    status = 422 if errors else 200
    return render_template("preferences.html", reader=reader, topics=_topics(), token=token,
                           frequencies=FREQUENCY_LABELS, message=message, errors=errors,
                           chosen={t.slug for t in reader.topics},
                           unsubscribe_token=runtime().tokens.make(Purpose.UNSUBSCRIBE, {"r": reader.id}),
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
