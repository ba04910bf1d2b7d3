"""The audit log (issue 15): logins, token creation, role changes, sends,
exports and API changes are recorded; admins read and export it; nobody's
password is ever written to it."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from mailer.models import AuditEvent, Role
from tests.console.conftest import PASSWORD


def test_editor_actions_are_recorded_and_admins_can_export_them(app, session, editors, admin,
                                                                 editor, api):
    editor.post("/console/tokens", {"name": "ci", "scope": "read"})
    admin.post(f"/console/editors/{editors[Role.VIEWER].id}/role", {"role": "editor"})
    admin.post(f"/console/editors/{editors[Role.VIEWER].id}/password",
               {"password": "a secret nobody logs"})
    assert api.post("/api/v1/topics", json={"slug": "harbour", "name": "Harbour"}).status_code == 201
    assert api.get("/api/v1/subscribers/export").status_code == 200
    editor.post("/console/logout")
    events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    actions = [(e.actor, e.action) for e in events]
    assert ("admin@news.example.org", "console.login") in actions
    assert ("editor@news.example.org", "console.token_create") in actions
    assert ("admin@news.example.org", "console.editor_role") in actions
    assert ("editor@news.example.org", "console.logout") in actions
    assert any(a == "api_articles.create_topic" and actor.startswith("API token") for actor, a in actions)
    assert any(a == "api_readers.export_subscribers" for _, a in actions)
    role_change = next(e for e in events if e.action == "console.editor_role")
    assert role_change.detail == {"role": "editor"} and role_change.ip
    assert role_change.target == f"editor_id={editors[Role.VIEWER].id}"

    page = admin.get("/console/audit").get_data(as_text=True)
    assert "console.editor_role" in page
    exported = admin.get("/console/audit.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert rows[0] == ["at", "actor", "action", "target", "detail", "ip"]
    text = exported.get_data(as_text=True)
    assert "a secret nobody logs" not in text and PASSWORD not in text
    assert editor.get("/console/audit").status_code in (302, 403)
