"""Automations: list, edit with preview, enable/disable, per-step figures."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from mailer.automations import (
    MAX_STEPS,
    get_automation,
    preview_step,
    save_automation,
    set_enabled,
    step_figures,
)
from mailer.common import ValidationError
from mailer.extensions import db
from mailer.models import Automation, AutomationStep, AutomationTrigger, Topic
from mailer.runtime import runtime
from mailer.web.console.auth import editor_required, viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.digests import PREVIEW_HEADERS
from mailer.web.console.helpers import flash_error


def _form_data() -> dict[str, object]:
    """Step blocks come as step-N-*; a block with neither subject nor text is dropped."""
    form = request.form
    steps = []
    for n in range(MAX_STEPS + 1):
        subject = form.get(f"step-{n}-subject", "")
        body_text = form.get(f"step-{n}-body_text", "")
        if f"step-{n}-delay_minutes" not in form or not (subject.strip() or body_text.strip()):
            continue
        steps.append({"delay_minutes": form.get(f"step-{n}-delay_minutes", "").strip() or "0",
                      "subject": subject, "body_text": body_text,
                      "body_mjml": form.get(f"step-{n}-body_mjml", "")})
    return {"name": form.get("name", ""), "trigger": form.get("trigger", "reader.confirmed"),
            "topics": form.getlist("topics"), "enabled": form.get("enabled") == "on",
            "steps": steps}


def _edit_page(automation: Automation | None, status: int = 200) -> tuple[str, int]:
    topics = db.session.scalars(select(Topic).order_by(Topic.name)).all()
    figures = step_figures(db.session, automation.id) if automation and automation.id else {}
    steps = [s for s in automation.steps if s.active] if automation else []
    return render_template("console/automation.html", automation=automation, topics=topics,
                           steps=steps, figures=figures, max_steps=MAX_STEPS), status


@console.get("/automations")
@viewer_required
def automations() -> str:
    rows = db.session.scalars(select(Automation).where(Automation.trigger.in_(AutomationTrigger.ALL))
                                  .order_by(Automation.name)).all()
    figures = {a.id: step_figures(db.session, a.id) for a in rows}
    return render_template("console/automations.html", automations=rows, figures=figures)


@console.get("/automations/new")
@editor_required
def automation_new() -> tuple[str, int]:
    return _edit_page(None)


@console.post("/automations/new")
@editor_required
def automation_create() -> WerkzeugResponse | tuple[str, int]:
    try:
        automation = save_automation(db.session, _form_data(), runtime().settings.base_url)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return _edit_page(None, exc.status)
    flash(f"Automation {automation.name!r} created.")
    return redirect(url_for("console.automation_edit", automation_id=automation.id))


@console.get("/automations/<int:automation_id>")
@viewer_required
def automation_edit(automation_id: int) -> tuple[str, int]:
    return _edit_page(get_automation(db.session, automation_id))


@console.post("/automations/<int:automation_id>")
@editor_required
def automation_save(automation_id: int) -> WerkzeugResponse | tuple[str, int]:
    automation = get_automation(db.session, automation_id)
    try:
        save_automation(db.session, _form_data(), runtime().settings.base_url, automation)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        return _edit_page(get_automation(db.session, automation_id), exc.status)
    flash("Automation saved.")
    return redirect(url_for("console.automation_edit", automation_id=automation_id))


@console.post("/automations/<int:automation_id>/enabled")
@editor_required
def automation_toggle(automation_id: int) -> WerkzeugResponse:
    enabled = request.form.get("enabled") == "1"
    automation = set_enabled(db.session, automation_id, enabled)
    flash(f"Automation {automation.name!r} {'enabled' if enabled else 'disabled'}.")
    if request.form.get("next") == "list":
        return redirect(url_for("console.automations"))
    return redirect(url_for("console.automation_edit", automation_id=automation_id))


def _step(automation_id: int, step_id: int) -> AutomationStep:
    step = db.session.get(AutomationStep, step_id)
    if step is None or step.automation_id != automation_id:
        raise ValidationError("No such step.", status=404)
    return step


@console.get("/automations/<int:automation_id>/steps/<int:step_id>/preview.html")
@viewer_required
def automation_step_preview(automation_id: int, step_id: int) -> Response:
    html, _ = preview_step(_step(automation_id, step_id))
    return Response(html, mimetype="text/html", headers=PREVIEW_HEADERS)


@console.get("/automations/<int:automation_id>/steps/<int:step_id>/preview.txt")
@viewer_required
def automation_step_preview_text(automation_id: int, step_id: int) -> Response:
    _, text = preview_step(_step(automation_id, step_id))
    return Response(text, mimetype="text/plain", headers=PREVIEW_HEADERS)
