"""Log in and out, role decorators, API tokens."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from mailer.common import ValidationError
from mailer.console import (
    SCOPES,
    attempt_login,
    attempt_second_factor,
    change_own_password,
    close_session,
    confirm_enrolment,
    create_token,
    disable_two_factor,
    effective_scope,
    open_session,
    provisioning_uri,
    recovery_codes_left,
    scope_allows,
    session_alive,
    start_enrolment,
    two_factor_required,
)
from mailer.extensions import db, limiter
from mailer.models import ApiToken, Editor, Role, utcnow
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import flash_error

F = TypeVar("F", bound=Callable[..., Any])
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SESSION_KEY = "console_session"  # the server-side session id, in the signed cookie
OPEN_ENDPOINTS = {"console.login", "console.login_code"}
# Changes any logged-in role may make, to its own account only.
SELF_SERVICE_ENDPOINTS = {"console.account_password", "console.token_create",
                          "console.token_revoke", "console.two_factor_start",
                          "console.two_factor_confirm", "console.two_factor_disable"}
# All an account may reach while admins require two-factor login and it has none yet.
SETUP_ENDPOINTS = {"console.account", "console.two_factor_start", "console.two_factor_confirm",
                   "console.logout"}
# Password right, code still owed: kept in the signed session, never a login.
PENDING_KEY = "two_factor_pending"
PENDING_SECONDS = 300


def require_role(*roles: str) -> Callable[[F], F]:
    """Let in only logged-in editors with one of `roles` (403 otherwise)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return redirect(url_for("console.login", next=request.path))
            if current_user.role not in roles:
                abort(403, "Your role does not allow this.")
            return view(*args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


viewer_required = require_role(Role.ADMIN, Role.EDITOR, Role.VIEWER)
editor_required = require_role(Role.ADMIN, Role.EDITOR)
admin_required = require_role(Role.ADMIN)


@console.before_request
def guard() -> Response | None:
    """Backstop for every console route, whatever its decorator says."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return redirect(url_for("console.login", next=request.path))
    if (request.endpoint not in SETUP_ENDPOINTS and not current_user.two_factor_enabled
            and two_factor_required(db.session)):
        flash("An admin requires two-factor login for every account: set it up to go on.")
        return redirect(url_for("console.account"))
    if (request.method not in SAFE_METHODS and not current_user.can_change()
            and request.endpoint not in SELF_SERVICE_ENDPOINTS):
        abort(403, "Viewers cannot change anything.")
    return None


@console.after_request
def no_cache(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def safe_next(target: str | None) -> str:
    """Only console paths on this site: never an open redirect."""
    if target and len(target) <= 2000 and target.isprintable() and target.isascii():
        parts = urlsplit(target)
        if (not parts.scheme and not parts.netloc and target.startswith("/console")
                and "\\" not in target and not target.startswith("//")):
            return target
    return url_for("console.dashboard")


@console.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;50 per hour", methods=["POST"])
def login() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(safe_next(request.args.get("next")))
        return render_template("console/login.html", next=request.args.get("next", ""))
    email = str(request.form.get("email", ""))[:320]
    password = str(request.form.get("password", ""))[:1000]
    result = attempt_login(db.session, email, password)
    if result.retry_after:
        wait = max(1, round(result.retry_after))
        return render_template(
            "console/login.html", next=request.form.get("next", ""), email=email,
            error=f"Too many failed logins for this address: try again in {wait} seconds."), 429
    editor = result.editor
    if editor is None:
        return render_template("console/login.html", next=request.form.get("next", ""),
                               error="Wrong email or password.", email=email), 401
    if editor.two_factor_enabled:
        session.clear()
        session[PENDING_KEY] = {"id": editor.id, "fp": editor.session_fingerprint(),
                                "at": int(time.time()),
                                "next": safe_next(request.form.get("next"))}
        return redirect(url_for("console.login_code"))
    return _finish_login(editor, safe_next(request.form.get("next")))


def _finish_login(editor: Editor, target: str) -> Response:
    # A fresh session at login: nothing set before (e.g. by an attacker) survives.
    session.clear()
    session[SESSION_KEY] = open_session(db.session, editor.id)
    login_user(editor)
    editor.last_login_at = utcnow()
    db.session.commit()
    if not editor.two_factor_enabled and two_factor_required(db.session):
        return redirect(url_for("console.account"))
    return redirect(target)


def _pending_editor() -> tuple[Editor, str] | None:
    """The account whose password was right moments ago in this browser, if still valid."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or not isinstance(pending.get("id"), int):
        return None
    if not isinstance(pending.get("at"), int) or time.time() - pending["at"] > PENDING_SECONDS:
        return None
    editor = db.session.get(Editor, pending["id"])
    if (editor is None or not editor.active or not editor.two_factor_enabled
            or not hmac.compare_digest(str(pending.get("fp", "")), editor.session_fingerprint())):
        return None
    return editor, safe_next(str(pending.get("next", "")))


@console.route("/login/code", methods=["GET", "POST"])
@limiter.limit("10 per minute;50 per hour", methods=["POST"])
def login_code() -> Response | str | tuple[str, int]:
    found = _pending_editor()
    if found is None:
        session.pop(PENDING_KEY, None)
        if request.method == "POST":
            flash("The login took too long: enter your password again.")
        return redirect(url_for("console.login"))
    editor, target = found
    if request.method == "GET":
        return render_template("console/login_code.html")
    code = str(request.form.get("code", ""))[:64]
    result = attempt_second_factor(db.session, editor.id, code, ip=request.remote_addr or "")
    if result.retry_after:
        wait = max(1, round(result.retry_after))
        return render_template(
            "console/login_code.html",
            error=f"Too many failed logins for this account: try again in {wait} seconds."), 429
    if result.editor is None:
        return render_template(
            "console/login_code.html",
            error="That code is not right, or was used already: enter the 6 digits your "
                  "app shows now, or an unused recovery code."), 401
    return _finish_login(result.editor, target)


@console.post("/logout")
@viewer_required
def logout() -> Response:
    # Ended on the server: a copy of this cookie no longer logs anyone in.
    close_session(db.session, session.get(SESSION_KEY))
    logout_user()
    session.clear()
    return redirect(url_for("console.login"))


def _token_rows() -> list[tuple[ApiToken, str | None]]:
    """Tokens with what each may do now; a viewer sees only their own."""
    query = select(ApiToken, Editor.role).outerjoin(Editor, ApiToken.editor_id == Editor.id)
    if current_user.role != Role.ADMIN:
        query = query.where(ApiToken.editor_id == current_user.id)
    rows = db.session.execute(query.order_by(ApiToken.id.desc())).all()
    return [(token, effective_scope(token, role)) for token, role in rows]


def _tokens_page(new_token: str | None = None, error: str = "",
                 status: int = 200) -> tuple[str, int]:
    allowed = [s for s in SCOPES if scope_allows(ROLE_SCOPE[current_user.role], s)]
    return render_template("console/tokens.html", tokens=_token_rows(), new_token=new_token,
                           scopes=allowed, error=error), status


ROLE_SCOPE = {Role.VIEWER: "read", Role.EDITOR: "write", Role.ADMIN: "admin"}


@console.get("/tokens")
@viewer_required
def tokens() -> tuple[str, int]:
    return _tokens_page()


@console.post("/tokens")
@viewer_required
def token_create() -> tuple[str, int]:
    name = " ".join(str(request.form.get("name", "")).split())[:200] or "console token"
    scope = str(request.form.get("scope", "write"))[:10]
    try:
        token = create_token(db.session, name, editor_id=current_user.id, scope=scope)
    except ValidationError as exc:
        db.session.rollback()
        return _tokens_page(error=exc.message, status=exc.status)
    # Shown once, on this response only; only its hash is stored.
    return _tokens_page(new_token=token)


@console.post("/tokens/<int:token_id>/revoke")
@viewer_required
def token_revoke(token_id: int) -> Response:
    row = db.get_or_404(ApiToken, token_id, description="No such token.")
    if current_user.role != Role.ADMIN and row.editor_id != current_user.id:
        abort(403, "Only an admin may revoke another editor's token.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()
        flash(f"Token {row.prefix}… revoked.")
    return redirect(url_for("console.tokens"))


def _account_page(status: int = 200, **extra: Any) -> tuple[str, int]:
    return render_template(
        "console/account.html", required=two_factor_required(db.session),
        codes_left=recovery_codes_left(db.session, current_user.id), **extra), status


@console.get("/account")
@viewer_required
def account() -> tuple[str, int]:
    return _account_page()


def _enrolment(error: str = "", status: int = 200) -> tuple[str, int]:
    secret = current_user.totp_pending_secret or ""
    return _account_page(status, secret=secret, uri=provisioning_uri(secret, current_user.email),
                         two_factor_error=error)


@console.post("/account/two-factor")
@viewer_required
def two_factor_start() -> Response | tuple[str, int]:
    try:
        start_enrolment(db.session, current_user.id)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return _account_page(exc.status)
    return _enrolment()


@console.post("/account/two-factor/confirm")
@viewer_required
def two_factor_confirm() -> Response | tuple[str, int]:
    try:
        codes = confirm_enrolment(db.session, current_user.id,
                                  str(request.form.get("code", ""))[:64])
    except ValidationError as exc:
        db.session.rollback()
        if current_user.totp_pending_secret and not current_user.two_factor_enabled:
            return _enrolment(exc.message, exc.status)
        flash_error(exc)
        return _account_page(exc.status)
    # Shown on this response only; only their hashes are stored.
    return _account_page(recovery_codes=codes)


@console.post("/account/two-factor/disable")
@viewer_required
def two_factor_disable() -> Response | tuple[str, int]:
    try:
        if two_factor_required(db.session):
            raise ValidationError("An admin requires two-factor login for every account; "
                                  "it cannot be turned off.", {"code": "required"}, status=409)
        disable_two_factor(db.session, current_user.id,
                           str(request.form.get("password", ""))[:1000],
                           str(request.form.get("code", ""))[:64])
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return _account_page(exc.status)
    flash("Two-factor login is off for your account.")
    return redirect(url_for("console.account"))


@console.post("/account/password")
@viewer_required
def account_password() -> Response | tuple[str, int]:
    try:
        editor = change_own_password(db.session, current_user.id,
                                     str(request.form.get("current_password", ""))[:1000],
                                     str(request.form.get("new_password", "")))
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return render_template("console/account.html"), exc.status
    # The new password changes the session fingerprint: every other session of this
    # account ends, and this one is renewed so it goes on.
    login_user(editor)
    flash("Your password is changed; other sessions of this account are logged out.")
    return redirect(url_for("console.account"))


def load_editor(editor_id: str) -> object | None:
    number, _, fingerprint = editor_id.partition(".")
    if not number.isdigit() or len(number) > 18:
        return None
    editor = db.session.get(Editor, int(number))
    # Flask-Login checks is_active only at login: without this, a deactivated
    # editor's open session would keep working. A session from before the last
    # password change carries an old fingerprint and ends too.
    if editor is None or not editor.active:
        return None
    if not hmac.compare_digest(fingerprint, editor.session_fingerprint()):
        return None
    if not session_alive(db.session, session.get(SESSION_KEY), editor.id):
        return None  # logged out (or idle too long): this cookie was left behind
    return editor
