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
from mailer.automations.reengage import (
    InactiveReport,
    engagement_status,
    keep_subscribed,
    reengage_step,
    scan_inactive,
    scan_inactive_due,
)
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
    "InactiveReport",
    "automation_json",
    "due_count",
    "engagement_status",
    "get_automation",
    "keep_subscribed",
    "plan_for_reader",
    "preview_step",
    "reengage_step",
    "repair_stale",
    "save_automation",
    "scan_inactive",
    "scan_inactive_due",
    "send_due_automations",
    "set_enabled",
    "step_figures",
]
