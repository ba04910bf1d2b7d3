"""Accounts (admins only): create, change role, deactivate and reactivate, set a password.

Views only read the form and report; the rules (nobody demotes or deactivates
themself, one active admin always remains) are in services/editors.py.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from mailer.extensions import db
from mailer.models import Role
from mailer.services import editors as accounts
from mailer.services.errors import ValidationError
from mailer.web.console import console
from mailer.web.console.auth import admin_required
from mailer.web.console.forms import flash_error


def _page(status: int = 200, form: dict[str, str] | None = None) -> tuple[str, int]:
    return render_template("console/editors.html", editors=accounts.list_editors(db.session),
                           roles=Role.ALL, form=form or {}), status


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
        editor = accounts.create_editor(db.session, email, str(request.form.get("password", "")),
                                        role)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        # Keep what was typed (never the password) so the admin only fixes the mistake.
        return _page(exc.status, {"email": email, "role": role})
    flash(f"Account {editor.email} ({editor.role}) created.")
    return redirect(url_for("console.editors"))


@console.post("/editors/<int:editor_id>/role")
@admin_required
def editor_role(editor_id: int) -> Response | tuple[str, int]:
    try:
        editor = accounts.set_role(db.session, current_user.id, editor_id,
                                   str(request.form.get("role", "")))
    except ValidationError as exc:
        return _refused(exc)
    flash(f"{editor.email} is now {editor.role}.")
    return redirect(url_for("console.editors"))


@console.post("/editors/<int:editor_id>/deactivate")
@admin_required
def editor_deactivate(editor_id: int) -> Response | tuple[str, int]:
    try:
        editor = accounts.set_active(db.session, current_user.id, editor_id, False)
    except ValidationError as exc:
        return _refused(exc)
    flash(f"{editor.email} deactivated: logged out, cannot log in, API tokens revoked.")
    return redirect(url_for("console.editors"))


@console.post("/editors/<int:editor_id>/reactivate")
@admin_required
def editor_reactivate(editor_id: int) -> Response | tuple[str, int]:
    try:
        editor = accounts.set_active(db.session, current_user.id, editor_id, True)
    except ValidationError as exc:
        return _refused(exc)
    flash(f"{editor.email} reactivated.")
    return redirect(url_for("console.editors"))


@console.post("/editors/<int:editor_id>/password")
@admin_required
def editor_password(editor_id: int) -> Response | tuple[str, int]:
    try:
        editor = accounts.set_password(db.session, current_user.id, editor_id,
                                       str(request.form.get("password", "")))
    except ValidationError as exc:
        return _refused(exc)
    flash(f"New password set for {editor.email}.")
    return redirect(url_for("console.editors"))
