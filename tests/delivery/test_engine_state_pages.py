"""The engine's own pauses and relay state, as editors see them: the console's
edition page and progress JSON, and the API."""

from __future__ import annotations

from sqlalchemy import update

from mailer import editions
from mailer.delivery.ledger import pause_for, relay_down
from mailer.models import Edition, utcnow
from tests.console.conftest import *  # noqa: F403 - the console's editor fixtures
from tests.delivery.conftest import planned_edition


def test_console_and_api_show_relay_state_and_the_breakers_reason(
        editor, api, session, rt, dispatch):
    edition = planned_edition(session, rt, readers=2)
    relay_down(session, edition.id, utcnow())
    page = editor.get(f"/console/editions/{edition.id}").get_data(as_text=True)
    assert "relay unreachable since " in page
    p = editor.get(f"/console/editions/{edition.id}/progress.json").json
    assert p["relay_status"].startswith("relay unreachable since ")
    assert pause_for(session, edition.id, "relay misconfigured: 535 wrong password")
    page = editor.get(f"/console/editions/{edition.id}").get_data(as_text=True)
    assert "relay misconfigured: 535 wrong password" in page and "Resume" in page
    body = api.get(f"/api/v1/editions/{edition.id}").get_json()
    assert body["status"] == "paused"
    assert body["paused_reason"] == "relay misconfigured: 535 wrong password"
    assert body["relay_unreachable_since"]
    editions.resume_edition(session, rt.settings, edition.id)
    body = api.get(f"/api/v1/editions/{edition.id}").get_json()
    assert (body["status"], body["paused_reason"], body["relay_unreachable_since"]) == (
        "sending", "", None)
    session.execute(update(Edition).values(status="done"))
    session.commit()


def test_cli_status_names_the_pause_reason(app, session, rt, dispatch):
    edition = planned_edition(session, rt, readers=2)
    pause_for(session, edition.id, "quiet hours 22:00-07:00 (UTC); resumes at tomorrow")
    result = app.test_cli_runner().invoke(args=["status", str(edition.id)])
    assert result.exit_code == 0, result.output
    assert "paused (quiet hours 22:00-07:00 (UTC); resumes at tomorrow)" in result.output
