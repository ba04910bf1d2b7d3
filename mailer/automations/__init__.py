"""Automations: email sequences (a welcome email and follow-ups) started by a trigger
(`reader.confirmed`), planned as rows of their own ledger and sent like deliveries.

Importing this package registers the planner with `mailer.readers.events`, so a
confirmation plans the steps in its own transaction.
"""

from mailer.automations.definitions import (
    MAX_DELAY_MINUTES,
    MAX_STEPS,
    automation_json,
    get_automation,
    preview_step,
    save_automation,
    set_enabled,
    step_figures,
)
from mailer.automations.planning import on_reader_confirmed, plan_for_reader
from mailer.automations.sending import (
    AutomationReport,
    due_count,
    repair_stale,
    send_due_automations,
)
from mailer.models import AutomationTrigger
from mailer.readers.events import on_event

on_event(AutomationTrigger.READER_CONFIRMED, on_reader_confirmed)

__all__ = [
    "MAX_DELAY_MINUTES",
    "MAX_STEPS",
    "AutomationReport",
    "automation_json",
    "due_count",
    "get_automation",
    "plan_for_reader",
    "preview_step",
    "repair_stale",
    "save_automation",
    "send_due_automations",
    "set_enabled",
    "step_figures",
]
