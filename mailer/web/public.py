"""What readers see: signup (form and embeddable snippet), confirmation,
"email me a new link", preferences (topics, frequency, pause, name, address,
data download, erasure), unsubscribe with its "stay, but..." choices.
(The archive lives in archive.py.)

The embeddable snippet is a plain HTML form other pages of the site include. It
posts, without a CSRF token (it cannot have one of ours), to `/subscribe/embed`,
which signs the address up in one step, exactly like the form: same rate limits,
same answer whatever the address, and double opt-in, so a forged cross-site post
can do no more than send one confirmation email nobody clicks.

Both take two measures against signup scripts (common/challenge.py):
- a proof of work the browser solves (`challenge` and `solution` fields), asked for
  when `MAILER_SIGNUP_CHALLENGE` says so; the snippet fetches its challenge from
  `/subscribe/challenge`. Without a valid one the form comes back with a clear
  error and a fresh challenge, and nothing is saved;
- a honeypot field (`website`) people never see: filled in, the answer is the
  usual one and nothing is saved, so the bot learns nothing.
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
from flask_limiter.util import get_remote_address
from markupsafe import Markup
from sqlalchemy import select, text

from mailer import readers as readers_service
from mailer.common import Challenge, ChallengeError, ChallengeMode, Purpose, TokenError, ValidationError
from mailer.extensions import csrf, db, limiter
from mailer.models import (
    Frequency,
    Reader,
    ReaderStatus,
    Topic,
)
from mailer.readers import (
    MAX_REASON_TEXT,
    confirm_change,
    erase_reader,
    export_reader,
    reader_for_token,
    reader_link_token,
    request_change,
)
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


LINK_ANSWER = ("If this address is subscribed, or waiting for confirmation, a message with a "
               "new link is on its way. It can take a few minutes; check your spam folder too.")


def _form_values() -> dict[str, object]:
    form = request.form
    return {"email": form.get("email", ""), "name": form.get("name", ""),
            "topics": form.getlist("topics"), "frequency": form.get("frequency") or None,
            "source": form.get("source", "subscribe"),
            # Filled by a script from the browser (Intl); unknown or missing: the
            # newsletter's zone.
            "timezone": readers_service.browser_timezone(form.get("timezone"))}


HONEYPOT = "website"  # the field's name in pasted snippets too; keep it
CHALLENGE_MESSAGES = {
    "missing": "Before we can sign you up, your browser must finish a short automatic check "
               "against signup robots. It needs JavaScript: if JavaScript is off, turn it on "
               "for this page and press Subscribe again.",
    "expired": "The automatic check on this form expired. Your browser is running a new "
               "one: press Subscribe again in a moment.",
}
CHALLENGE_FAILED = ("The automatic check on this form did not pass. Your browser is running a "
                    "new one: press Subscribe again in a moment.")


def _challenge_required(*, counted: bool) -> bool:
    return runtime().signup_guard().required(get_remote_address(), counted=counted)


def _subscribe_form(values: dict[str, object], errors: dict[str, str], message: str = "",
                    status: int = 200, *, challenge: Challenge | None = None) -> tuple[str, int]:
    guard = runtime().signup_guard()
    return render_template("subscribe.html", topics=_topics(), values=values, errors=errors,
                           message=message, frequencies=FREQUENCY_LABELS, challenge=challenge,
                           always=guard.mode == ChallengeMode.ALWAYS), status


def _fresh_form() -> tuple[str, int]:
    challenge = runtime().signup_guard().issue() if _challenge_required(counted=False) else None
    return _subscribe_form({}, {}, challenge=challenge)


@public.get("/")
def index() -> tuple[str, int]:
    return _fresh_form()


@public.get("/subscribe")
def subscribe_form() -> tuple[str, int]:
    return _fresh_form()


@public.get("/subscribe/challenge")
@limiter.limit(form_limit)
def challenge() -> Response:
    """A challenge for the snippet's script on other pages of the site: JSON, no
    cookie, readable from any origin (it is worth nothing without the work)."""
    guard = runtime().signup_guard()
    required = _challenge_required(counted=False)
    body: dict[str, object] = {"required": required}
    if required:
        body.update(guard.issue().as_json())
    response = jsonify(body)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused_signup(values: dict[str, object]) -> tuple[str, int] | None:
    """None when the signup may go ahead; else the form again, with the reason and a
    fresh challenge (422). Checked before anything is saved."""
    if not _challenge_required(counted=True):
        return None
    guard = runtime().signup_guard()
    try:
        guard.verify(request.form.get("challenge", ""), request.form.get("solution", ""))
    except ChallengeError as exc:
        message = CHALLENGE_MESSAGES.get(exc.reason, CHALLENGE_FAILED)
        return _subscribe_form(values, {"challenge": exc.reason}, message, 422,
                               challenge=guard.issue())
    return None


def _signed_up(started: float) -> tuple[str, int]:
    _answer_slowly(started)
    return render_template("message.html", title="Check your inbox", message=SIGNUP_ANSWER), 200


def _answer_slowly(started: float) -> None:
    """The same answer for new, pending, confirmed and suppressed addresses, and in
    roughly the same time: no enumeration."""
    remaining = runtime().settings.signup_min_seconds - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)


def _signup(values: dict[str, object], source: str) -> None:
    readers_service.subscribe(
        db.session,
        email=values["email"],
        name=values["name"],
        topics=values["topics"],
        frequency=values["frequency"],
        source=source[:200],
        ip=request.remote_addr or "",
        # Only a reader at the form may lift their own erasure, by double opt-in.
        from_form=True,
        timezone=values.get("timezone"),
    )


@public.post("/subscribe")
@limiter.shared_limit(signup_limit, scope="signup", methods=["POST"])
def subscribe() -> tuple[str, int]:
    started = time.monotonic()
    values = _form_values()
    if request.form.get(HONEYPOT):  # people never see or fill it: the usual answer, nothing saved
        return _signed_up(started)
    refused = _refused_signup(values)
    if refused is not None:
        return refused
    try:
        _signup(values, f"form:{values['source']}")
    except ValidationError as exc:
        db.session.rollback()
        return _subscribe_form(values, exc.fields or {"email": exc.message}, exc.message, 422,
                               challenge=_challenge_again())
    return _signed_up(started)


def _challenge_again() -> Challenge | None:
    """The form shown again after another error: a fresh challenge if one is due
    (the one posted may be spent already)."""
    return runtime().signup_guard().issue() if _challenge_required(counted=True) else None


@public.post("/subscribe/embed")
@csrf.exempt  # posted from other sites' pages; double opt-in and the limits make it harmless
@limiter.shared_limit(signup_limit, scope="signup", methods=["POST"])
def subscribe_embed() -> tuple[str, int]:
    started = time.monotonic()
    values = _form_values()
    if request.form.get(HONEYPOT):
        return _signed_up(started)
    refused = _refused_signup(values)
    if refused is not None:
        return refused
    known = {t.slug for t in _topics()}
    chosen = values["topics"]
    values["topics"] = [t for t in chosen if t in known] if isinstance(chosen, list) else []
    if values["frequency"] not in Frequency.ALL or values["frequency"] == Frequency.PAUSED:
        values["frequency"] = Frequency.IMMEDIATE
    try:
        _signup(values, f"embed:{request.referrer or ''}"[:200])
    except ValidationError as exc:
        db.session.rollback()
        return _subscribe_form(values, exc.fields or {"email": exc.message}, exc.message, 422,
                               challenge=_challenge_again())
    return _signed_up(started)


def _snippet_html(inline_script: bool = True) -> str:
    return render_template("embed_snippet.html", base_url=runtime().settings.base_url,
                           topics=_topics(), inline_script=inline_script)


@public.get("/subscribe/snippet")
def snippet() -> Response:
    """The HTML to paste into other pages of the site."""
    return Response(_snippet_html(), mimetype="text/plain")


@public.get("/subscribe/snippet/preview")
def snippet_preview() -> str:
    """The snippet as visitors will see it, with its code and a copy button."""
    code = _snippet_html()
    # Shown live under this site's script policy: its inline line would be refused
    # here, so the page's own timezone.js fills the field instead.
    live = _snippet_html(inline_script=False)
    return render_template("embed_preview.html", code=code, snippet=Markup(live))  # noqa: S704


@public.get("/link")
def link_form() -> str:
    return render_template("link.html", values={}, errors={})


@public.post("/link")
@limiter.shared_limit(signup_limit, scope="signup", methods=["POST"])
def link_request() -> tuple[str, int]:
    started = time.monotonic()
    email = request.form.get("email", "")
    try:
        readers_service.request_link(db.session, email)
    except ValidationError as exc:
        db.session.rollback()
        return render_template("link.html", values={"email": email},
                               errors={"email": exc.message}), 422
    _answer_slowly(started)
    return render_template("message.html", title="Check your inbox", message=LINK_ANSWER), 200


@public.get("/confirm/<token>")
def confirm(token: str) -> str:
    result = readers_service.confirm(db.session, runtime().tokens, token)
    if result.already:
        # A used link grants nothing more: no preferences link here.
        return render_template("message.html", title="Already confirmed",
                               message="This link was already used: your subscription is active. "
                                       "Every digest has a link to your preferences.")
    prefs = reader_link_token(runtime().tokens, Purpose.PREFERENCES, result.reader)
    return render_template("message.html", title="You are subscribed",
                           message="Thank you: your subscription is confirmed.",
                           link=(url_for("public.preferences", token=prefs),
                                 "Choose topics and frequency"))


@public.get("/change-email/<token>")
def change_email(token: str) -> str:
    reader = confirm_change(db.session, runtime().tokens, token)
    prefs = reader_link_token(runtime().tokens, Purpose.PREFERENCES, reader)
    return render_template("message.html", title="Address changed",
                           message=f"Your digests now go to {reader.email}.",
                           link=(url_for("public.preferences", token=prefs), "Your preferences"))


def _unsubscribe_reader(token: str) -> Reader:
    return reader_for_token(db.session, runtime().tokens, Purpose.UNSUBSCRIBE, token)


def _unsubscribe_page(reader: Reader, token: str, **extra: object) -> str:
    return render_template(
        "unsubscribe.html", reader=reader, email=reader.email, token=token,
        active=reader.status == ReaderStatus.CONFIRMED, reasons=readers_service.UNSUBSCRIBE_REASONS,
        pause_days=readers_service.PAUSE_DAYS, max_comment=MAX_REASON_TEXT,
        prefs_token=reader_link_token(runtime().tokens, Purpose.PREFERENCES, reader), **extra)


@public.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> str:
    # Link scanners fetch GETs: this page only shows buttons.
    reader = _unsubscribe_reader(token)
    return _unsubscribe_page(reader, token, done=False)


@public.post("/unsubscribe/<token>/keep")
@limiter.limit(form_limit)
def unsubscribe_keep(token: str) -> tuple[str, int] | str:
    """"Switch to weekly" or "pause for 30 days" instead of leaving."""
    reader = _unsubscribe_reader(token)
    try:
        readers_service.keep_reader(db.session, reader.id, request.form.get("choice"))
    except ValidationError as exc:
        db.session.rollback()
        return _unsubscribe_page(reader, token, done=False, error=exc.message), exc.status
    return _unsubscribe_page(reader, token, done=False, kept=request.form.get("choice"))


@public.post("/unsubscribe/<token>")
@csrf.exempt  # RFC 8058 one-click: the signed token is the authorisation
def unsubscribe(token: str) -> tuple[str, int] | str:
    reader = _unsubscribe_reader(token)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    email = readers_service.unsubscribe_by_link(
        db.session, reader.id,
        source="one-click" if one_click else "page",
        reason="" if one_click else request.form.get("reason", ""),
        comment="" if one_click else request.form.get("comment", ""),
    )
    if email is None:
        raise TokenError("This link is no longer valid.")
    prefs = reader_link_token(runtime().tokens, Purpose.PREFERENCES, reader)
    return render_template("unsubscribe.html", email=email, token=token, done=True,
                           prefs_token=prefs)


def _preferences_reader(token: str) -> Reader:
    return reader_for_token(db.session, runtime().tokens, Purpose.PREFERENCES, token)


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
                    timezone=request.form.get("timezone"),
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
                           zones=readers_service.timezone_choices(),
                           unsubscribe_token=reader_link_token(runtime().tokens, Purpose.UNSUBSCRIBE,
                                                              reader),
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
