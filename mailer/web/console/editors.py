"""Accounts (admins only): create, change role, deactivate and reactivate, set a password.

Views only read the form and report; the rules (nobody demotes or deactivates
themself, one active admin always remains) are in services/editors.py.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from mailer.common import ValidationError
from mailer.console import (
    create_editor,
    list_editors,
    reset_two_factor,
    set_active,
    set_password,
    set_role,
    set_two_factor_required,
    two_factor_required,
)
from mailer.extensions import db
from mailer.models import Editor, Role
from mailer.web.console.auth import admin_required
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import flash_error


def _page(status: int = 200, form: dict[str, str] | None = None) -> tuple[str, int]:
    return render_template("console/editors.html", editors=list_editors(db.session),
                           roles=Role.ALL, form=form or {},
                           two_factor_required=two_factor_required(db.session)), status


def _refused(exc: ValidationError) -> tuple[str, int]:
    """The list again, with the reason, under the error's 4xx status."""
    db.session.rollback()
    flash_error(exc)
    return _page(exc.status)


@console.get("/editors")
@admin_required
def editors() -> tuple[str, int]:
    return _page()


@console.post("/editors")
@admin_required
def editor_create() -> Response | tuple[str, int]:
    email = str(request.form.get("email", ""))[:400]
    role = str(request.form.get("role", Role.EDITOR))
    try:
        editor = create_editor(db.session, email, str(request.form.get("password", "")),
                                        role)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        # Keep what was typed (never the password) so the admin only fixes the mistake.
        return _page(exc.status, {"email": email, "role": role})
    flash(f"Account {editor.email} ({editor.role}) created.")
    return redirect(url_for("console.editors"))


@console.post("/editors/two-factor")
@admin_required
def editors_two_factor() -> Response:
    required = request.form.get("required") == "1"
    set_two_factor_required(db.session, required, updated_by=current_user.email)
    flash("Two-factor login is now required for every account." if required
          else "Two-factor login is now optional.")
    return redirect(url_for("console.editors"))


def _apply(change: Callable[[], Editor], done: Callable[[Editor], str]) -> Response | tuple[str, int]:
    """Run one account change from the service; refusals redisplay the page with the reason."""
    try:
        editor = change()
    except ValidationError as exc:
        return _refused(exc)
    flash(done(editor))
    return redirect(url_for("console.editors"))


@console.post("/editors/<int:editor_id>/role")
@admin_required
def editor_role(editor_id: int) -> Response | tuple[str, int]:
    role = str(request.form.get("role", ""))
    return _apply(lambda: set_role(db.session, current_user.id, editor_id, role),
                  lambda e: f"{e.email} is now {e.role}.")


@console.post("/editors/<int:editor_id>/deactivate")
@admin_required
def editor_deactivate(editor_id: int) -> Response | tuple[str, int]:
    return _apply(lambda: set_active(db.session, current_user.id, editor_id, False),
                  lambda e: f"{e.email} deactivated: logged out, cannot log in, API tokens revoked.")


@console.post("/editors/<int:editor_id>/reactivate")
@admin_required
def editor_reactivate(editor_id: int) -> Response | tuple[str, int]:
    return _apply(lambda: set_active(db.session, current_user.id, editor_id, True),
                  lambda e: f"{e.email} reactivated.")


@console.post("/editors/<int:editor_id>/two-factor/reset")
@admin_required
def editor_two_factor_reset(editor_id: int) -> Response | tuple[str, int]:
    return _apply(lambda: reset_two_factor(db.session, current_user.id, editor_id),
                  lambda e: f"Two-factor login cleared for {e.email}; they are logged out.")


@console.post("/editors/<int:editor_id>/password")
@admin_required
def editor_password(editor_id: int) -> Response | tuple[str, int]:
    password = str(request.form.get("password", ""))
    return _apply(lambda: set_password(db.session, current_user.id, editor_id, password),
                  lambda e: f"New password set for {e.email}.")
