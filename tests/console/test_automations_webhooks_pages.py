"""Console pages of automations and webhooks."""

from __future__ import annotations

from sqlalchemy import select

from mailer import automations
from mailer.models import Automation, WebhookEndpoint, WebhookMessage
from mailer.readers import subscribe


def test_create_edit_preview_toggle_automation(editor, session, dispatch, rt, sender):
    page = editor.get("/console/automations/new")
    assert page.status_code == 200
    answer = editor.post("/console/automations/new", {
        "name": "Welcome", "enabled": "on", "trigger": "reader.confirmed",
        "step-0-delay_minutes": "0", "step-0-subject": "Hi {{ name }}",
        "step-0-body_text": "{{ greeting }}\n\nWelcome!"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    automation = session.scalars(select(Automation)).one()
    subscribe(session, email="reader@example.org", confirmed=True)
    automations.send_due_automations(session, rt.settings, rt.tokens, sender)
    page = editor.get(f"/console/automations/{automation.id}").get_data(as_text=True)
    assert "Sent 1 · failed 0 · pending 0" in page
    step = automation.steps[0]
    preview = editor.get(f"/console/automations/{automation.id}/steps/{step.id}/preview.html")
    assert "Hello Ada Example," in preview.get_data(as_text=True)
    assert "sandbox" in preview.headers["Content-Security-Policy"]
    listing = editor.get("/console/automations").get_data(as_text=True)
    assert "Welcome" in listing and "enabled" in listing
    editor.post(f"/console/automations/{automation.id}/enabled", {"enabled": "0"})
    session.refresh(automation)
    assert not automation.enabled
    reader_page = editor.get("/console/readers").get_data(as_text=True)
    assert "reader@example.org" in reader_page
    rid = subscribe(session, email="reader@example.org").reader_id
    history = editor.get(f"/console/readers/{rid}").get_data(as_text=True)
    assert "Welcome step 1" in history


def test_bad_automation_form_is_a_4xx_and_saves_nothing(editor, session):
    answer = editor.post("/console/automations/new", {
        "name": "Broken", "step-0-delay_minutes": "0", "step-0-subject": "x",
        "step-0-body_text": "y", "step-0-body_mjml": "<mjml><mj-body>"})
    assert answer.status_code == 400
    assert "body_mjml" in answer.get_data(as_text=True)
    assert session.scalars(select(Automation)).all() == []


def test_viewer_cannot_change_automations(viewer, session):
    assert viewer.get("/console/automations").status_code == 200
    assert viewer.post("/console/automations/new", {"name": "x"}).status_code in (302, 403)
    assert session.scalars(select(Automation)).all() == []


def test_webhook_pages_and_send_again(admin, session, dispatch, settings_override):
    settings_override(allow_private_urls=True)
    answer = admin.post("/console/webhooks", {"url": "http://127.0.0.1:9/hook",
                                              "events": ["reader.subscribed"]})
    assert answer.status_code == 302
    endpoint = session.scalars(select(WebhookEndpoint)).one()
    subscribe(session, email="w@example.org")
    message = session.scalars(select(WebhookMessage)).one()
    page = admin.get(f"/console/webhooks/{endpoint.id}").get_data(as_text=True)
    assert message.msg_id in page and "Send again" in page
    again = admin.post(f"/console/webhooks/{endpoint.id}/messages/{message.id}/again")
    assert again.status_code == 302
    assert "127.0.0.1:9" in admin.get("/console/webhooks").get_data(as_text=True)
    bad = admin.post("/console/webhooks", {"url": "gopher://x", "events": ["reader.subscribed"]})
    assert bad.status_code == 302
    assert session.scalars(select(WebhookEndpoint)).all() == [endpoint]
