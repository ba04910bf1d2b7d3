"""API: automations (a welcome email and its follow-ups, triggered by `reader.confirmed`)."""

from __future__ import annotations

from sqlalchemy import select

from mailer.automations import automation_json, get_automation, save_automation
from mailer.extensions import db
from mailer.models import Automation, AutomationTrigger
from mailer.runtime import runtime
from mailer.web.api import api_blueprint, json_body, route
from mailer.web.api_schemas import AutomationIn, AutomationList, AutomationOut, Error

api_automations = api_blueprint("api_automations")


@route(api_automations, "POST", "/automations", "Create an automation", body=AutomationIn,
       ok={201: AutomationOut}, errors={409: Error})
def create_automation(body: AutomationIn) -> tuple[AutomationOut, int]:
    # The service checks what the schema cannot (MJML, topics, order of delays).
    automation = save_automation(db.session, json_body(), runtime().settings.base_url)
    return AutomationOut.model_validate(automation_json(db.session, automation)), 201


@route(api_automations, "GET", "/automations", "Automations with per-step figures",
       ok={200: AutomationList})
def list_automations() -> AutomationList:
    rows = db.session.scalars(select(Automation).where(Automation.trigger.in_(AutomationTrigger.ALL))
                                  .order_by(Automation.name))
    return AutomationList.model_validate(
        {"automations": [automation_json(db.session, a) for a in rows]})


@route(api_automations, "GET", "/automations/<int:automation_id>", "An automation",
       ok={200: AutomationOut})
def show_automation(automation_id: int) -> AutomationOut:
    return AutomationOut.model_validate(
        automation_json(db.session, get_automation(db.session, automation_id)))


@route(api_automations, "PUT", "/automations/<int:automation_id>",
       "Replace an automation (steps sent already keep their ledger rows)", body=AutomationIn,
       ok={200: AutomationOut}, errors={409: Error})
def replace_automation(automation_id: int, body: AutomationIn) -> AutomationOut:
    automation = save_automation(db.session, json_body(), runtime().settings.base_url,
                                 get_automation(db.session, automation_id))
    return AutomationOut.model_validate(automation_json(db.session, automation))
