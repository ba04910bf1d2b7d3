"""API token scopes, capped by the owner's current role (issue 15)."""

from __future__ import annotations

from click.testing import CliRunner

from mailer.console import create_token
from mailer.console.editors import set_role
from mailer.models import Role


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_demoting_the_owner_takes_write_rights_from_their_tokens(app, client, session, editors):
    owner = editors[Role.EDITOR]
    token = create_token(session, "automation", editor_id=owner.id, scope="write")
    created = client.post("/api/v1/topics", json={"slug": "harbour", "name": "Harbour"},
                          headers=_bearer(token))
    assert created.status_code == 201
    set_role(session, editors[Role.ADMIN].id, owner.id, Role.VIEWER)
    refused = client.post("/api/v1/topics", json={"slug": "ferries", "name": "Ferries"},
                          headers=_bearer(token))
    assert refused.status_code == 403 and "scope" in refused.get_json()["error"]
    assert client.get("/api/v1/topics", headers=_bearer(token)).status_code == 200
    set_role(session, editors[Role.ADMIN].id, owner.id, Role.EDITOR)  # promoted back: write again
    assert client.post("/api/v1/topics", json={"slug": "ferries", "name": "Ferries"},
                       headers=_bearer(token)).status_code == 201


def test_read_tokens_only_read(client, session, editors):
    token = create_token(session, "dashboard", editor_id=editors[Role.ADMIN].id, scope="read")
    assert client.get("/api/v1/topics", headers=_bearer(token)).status_code == 200
    assert client.post("/api/v1/topics", json={"slug": "x", "name": "X"},
                       headers=_bearer(token)).status_code == 403


def test_viewers_cannot_get_write_tokens_anywhere(app, session, editors, viewer):
    runner = CliRunner()
    cli = app.cli
    denied = runner.invoke(cli, ["create-token", "--editor", "viewer@news.example.org",
                                 "--scope", "write"], obj=None)
    assert denied.exit_code != 0 and "viewer" in denied.output
    allowed = runner.invoke(cli, ["create-token", "--editor", "viewer@news.example.org",
                                  "--scope", "read"])
    assert allowed.exit_code == 0 and allowed.output.strip().startswith("mlr_")
    page = viewer.get("/console/tokens").get_data(as_text=True)
    assert '<option value="read"' in page and '<option value="write"' not in page
    answer = viewer.post("/console/tokens", {"name": "mine", "scope": "write"})
    assert answer.status_code == 403
    answer = viewer.post("/console/tokens", {"name": "mine", "scope": "read"})
    assert answer.status_code == 200 and 'id="new-token"' in answer.get_data(as_text=True)


def test_the_tokens_page_shows_scopes_and_what_is_left_of_them(session, editors, admin):
    create_token(session, "ci", editor_id=editors[Role.EDITOR].id, scope="write")
    set_role(session, editors[Role.ADMIN].id, editors[Role.EDITOR].id, Role.VIEWER)
    page = admin.get("/console/tokens").get_data(as_text=True)
    assert "write" in page and "(now read: owner" in page
    answer = admin.post("/console/tokens", {"name": "ops", "scope": "admin"})
    assert answer.status_code == 200
