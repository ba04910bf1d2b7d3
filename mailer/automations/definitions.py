"""Automations as editors define them: validation, compiling each step once, and
the JSON the API answers with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape
from mjml import mjml2html
from sqlalchemy import func, select

from mailer.common.errors import NotFound, ValidationError
from mailer.common.validation import clean_int, clean_slugs, clean_text
from mailer.mail.rendering import FillTemplate, TemplateError, compile_email
from mailer.models import (
    Automation,
    AutomationDelivery,
    AutomationStep,
    AutomationTrigger,
    DeliveryStatus,
    utcnow,
)
from mailer.models.base import DbSession
from mailer.readers.subscriptions import topics_by_slug

MAX_STEPS = 20
MAX_DELAY_MINUTES = 525_600  # one year
MAX_BODY = 100_000

# What an editor may write in a step to get a reader's value (`{{ name }}` or
# `{{ reader.name }}`); nothing else of Jinja is evaluated in their text.
_PLACEHOLDER_RE = re.compile(
    r"\{\{\s*(?:reader\.)?(name|email|greeting|unsubscribe_url|preferences_url)\s*\}\}")


def _placeholders(source: str) -> str:
    # "%%" typed by an editor must never become a reader placeholder by accident.
    return _PLACEHOLDER_RE.sub(r"%%\1%%", source.replace("%%", "%\u200b%"))


def _html_with_placeholders(source: str) -> Markup:
    """Editor text for the HTML layout: escaped, placeholders kept."""
    parts = _PLACEHOLDER_RE.split(source.replace("%%", "%\u200b%"))
    out = [str(escape(p)) if i % 2 == 0 else f"%%{p}%%" for i, p in enumerate(parts)]
    return Markup("".join(out))  # noqa: S704 - every literal part is escaped above


@dataclass(frozen=True)
class StepInput:
    delay_minutes: int
    subject: str
    body_text: str
    body_mjml: str


def compile_step(step: StepInput, base_url: str, field: str = "steps[0]") -> tuple[str, str]:
    """(html, text) of a step with reader placeholders; MJML compiled here, once."""
    text_ctx = {"subject": step.subject, "base_url": base_url,
                "body_text": Markup(_placeholders(step.body_text)),  # noqa: S704 - text part
                "paragraphs": [_html_with_placeholders(p) for p in
                               re.split(r"\n\s*\n", step.body_text.strip()) if p.strip()]}
    try:
        compiled = compile_email("automation", text_ctx)
    except TemplateError as exc:
        raise ValidationError(f"{field}: {exc}", {f"{field}.body_text": str(exc)}) from exc
    html = compiled.html
    if step.body_mjml:
        try:
            html = mjml2html(_placeholders(step.body_mjml))
        except Exception as exc:  # mjml-python raises ValueError and others
            raise ValidationError(f"{field}.body_mjml does not compile: {exc}",
                                  {f"{field}.body_mjml": f"MJML does not compile: {exc}"}) from exc
    return html, compiled.text


def preview_step(step: AutomationStep, sample: dict[str, str] | None = None) -> tuple[str, str]:
    """The step as a reader would see it, filled with sample values."""
    values = sample or {"name": "Ada Example", "email": "ada@example.org",
                        "greeting": "Hello Ada Example,", "unsubscribe_url": "#unsubscribe",
                        "preferences_url": "#preferences"}
    return FillTemplate(step.html).fill(values), FillTemplate(step.text).fill(values)


def _clean_steps(raw: object) -> list[StepInput]:
    if not isinstance(raw, list) or not raw:
        raise ValidationError("steps must be a non-empty list.", {"steps": "at least one step"})
    if len(raw) > MAX_STEPS:
        raise ValidationError(f"At most {MAX_STEPS} steps.", {"steps": f"at most {MAX_STEPS}"})
    steps = []
    previous = 0
    for index, item in enumerate(raw):
        field = f"steps[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(f"{field} must be an object.", {field: "not an object"})
        unknown = sorted(set(item) - {"delay_minutes", "subject", "body_text", "body_mjml"})
        if unknown:
            raise ValidationError(f"{field} has unknown fields: {', '.join(unknown)}.",
                                  {f"{field}.{unknown[0]}": "unknown field"})
        delay = clean_int(item.get("delay_minutes"), f"{field}.delay_minutes", 0,
                          MAX_DELAY_MINUTES)
        if delay < previous:
            raise ValidationError(f"{field}.delay_minutes must not be before the previous step's.",
                                  {f"{field}.delay_minutes": "earlier than the previous step"})
        previous = delay
        subject = clean_text(item.get("subject"), f"{field}.subject", 300, required=True)
        body_text = item.get("body_text")
        if not isinstance(body_text, str) or not body_text.strip():
            raise ValidationError(f"{field}.body_text is required.",
                                  {f"{field}.body_text": "required"})
        body_mjml = item.get("body_mjml") or ""
        if not isinstance(body_mjml, str):
            raise ValidationError(f"{field}.body_mjml must be a string.",
                                  {f"{field}.body_mjml": "must be a string"})
        for name, value in (("body_text", body_text), ("body_mjml", body_mjml)):
            if len(value) > MAX_BODY:
                raise ValidationError(f"{field}.{name} is too long.", {f"{field}.{name}": "too long"})
        steps.append(StepInput(delay, subject, body_text.replace("\r\n", "\n").strip(),
                               body_mjml.strip()))
    return steps


def save_automation(session: DbSession, data: dict[str, Any], base_url: str,
                    automation: Automation | None = None) -> Automation:
    """Create or replace an automation from API/console input. Everything is checked and
    every step compiled before anything is written; commits."""
    unknown = sorted(set(data) - {"name", "trigger", "topics", "steps", "enabled"})
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(unknown)}.",
                              {unknown[0]: "unknown field"})
    name = clean_text(data.get("name"), "name", 200, required=True)
    trigger = data.get("trigger", AutomationTrigger.READER_CONFIRMED)
    if trigger not in AutomationTrigger.ALL:
        raise ValidationError(f"trigger must be one of: {', '.join(AutomationTrigger.ALL)}.",
                              {"trigger": "unknown trigger"})
    topics = topics_by_slug(session, clean_slugs(data.get("topics")))
    enabled = data.get("enabled", True if automation is None else automation.enabled)
    if not isinstance(enabled, bool):
        raise ValidationError("enabled must be true or false.", {"enabled": "not a boolean"})
    steps = _clean_steps(data.get("steps"))
    compiled = [compile_step(step, base_url, f"steps[{i}]") for i, step in enumerate(steps)]
    clash = session.scalar(select(Automation.id).where(Automation.name == name))
    if clash is not None and (automation is None or clash != automation.id):
        raise ValidationError("An automation with this name exists.", {"name": "already used"},
                              status=409)

    if automation is None:
        automation = Automation(name=name, trigger=str(trigger))
        session.add(automation)
    automation.name, automation.trigger, automation.enabled = name, str(trigger), enabled
    automation.topics = topics
    automation.updated_at = utcnow()
    existing = {s.position: s for s in automation.steps}
    for position, (step, (html, text)) in enumerate(zip(steps, compiled, strict=True)):
        row = existing.get(position)
        if row is None:
            automation.steps.append(AutomationStep(
                position=position, delay_minutes=step.delay_minutes, subject=step.subject,
                body_text=step.body_text, body_mjml=step.body_mjml, html=html, text=text,
                version=1, active=True))
            continue
        changed = (row.subject, row.body_text, row.body_mjml, row.html, row.text) != (
            step.subject, step.body_text, step.body_mjml, html, text)
        row.delay_minutes, row.subject, row.body_text = step.delay_minutes, step.subject, step.body_text
        row.body_mjml, row.html, row.text, row.active = step.body_mjml, html, text, True
        if changed:
            row.version += 1
    # Steps beyond the new list stop sending but keep their history.
    for position, row in existing.items():
        if position >= len(steps):
            row.active = False
    session.commit()
    return automation


def set_enabled(session: DbSession, automation_id: int, enabled: bool) -> Automation:
    automation = get_automation(session, automation_id)
    automation.enabled = enabled
    automation.updated_at = utcnow()
    session.commit()
    return automation


def get_automation(session: DbSession, automation_id: int) -> Automation:
    automation = session.get(Automation, automation_id)
    # The system's re-engagement email is no editor's automation to edit or switch off.
    if automation is None or automation.trigger not in AutomationTrigger.ALL:
        raise NotFound("No such automation.")
    return automation


def step_figures(session: DbSession, automation_id: int) -> dict[int, dict[str, int]]:
    """Per step id: sent, failed (failed + unknown), pending (still owed), skipped."""
    rows = session.execute(
        select(AutomationDelivery.step_id, AutomationDelivery.status, func.count())
        .join(AutomationStep, AutomationStep.id == AutomationDelivery.step_id)
        .where(AutomationStep.automation_id == automation_id)
        .group_by(AutomationDelivery.step_id, AutomationDelivery.status)
    ).all()
    figures: dict[int, dict[str, int]] = {}
    for step_id, status, count in rows:
        entry = figures.setdefault(step_id, {"sent": 0, "failed": 0, "pending": 0, "skipped": 0})
        if status == DeliveryStatus.SENT:
            entry["sent"] += count
        elif status in (DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN):
            entry["failed"] += count
        elif status in DeliveryStatus.OUTSTANDING:
            entry["pending"] += count
        else:
            entry["skipped"] += count
    return figures


def automation_json(session: DbSession, automation: Automation) -> dict[str, Any]:
    figures = step_figures(session, automation.id)
    empty = {"sent": 0, "failed": 0, "pending": 0, "skipped": 0}
    return {
        "id": automation.id,
        "name": automation.name,
        "trigger": automation.trigger,
        "enabled": automation.enabled,
        "topics": sorted(t.slug for t in automation.topics),
        "steps": [{"id": s.id, "position": s.position, "delay_minutes": s.delay_minutes,
                   "subject": s.subject, "body_text": s.body_text,
                   "body_mjml": s.body_mjml or None, "version": s.version,
                   **figures.get(s.id, empty)}
                  for s in automation.steps if s.active],
        "created_at": automation.created_at.isoformat(),
    }
