"""Your account: every role may change its own password, knowing the current one."""

from __future__ import annotations

from mailer.console.editors import authenticate
from tests.console.conftest import PASSWORD, Console, login, new_client


def test_a_viewer_changes_their_own_password(app, viewer, editors, session):
    page = viewer.get("/console/account").get_data(as_text=True)
    assert "Change your password" in page and "viewer@news.example.org" in page
    other = Console(new_client(app), editors["viewer"])  # the same account on another device
    assert login(other.client, "viewer@news.example.org").status_code == 302

    r = viewer.post("/console/account/password",
                    {"current_password": "wrong guess at it", "new_password": "a brand new phrase"})
    assert r.status_code == 400 and "current password is not right" in r.get_data(as_text=True)
    r = viewer.post("/console/account/password",
                    {"current_password": PASSWORD, "new_password": "short"})
    assert r.status_code == 400 and "at least 10 characters" in r.get_data(as_text=True)
    assert authenticate(session, "viewer@news.example.org", PASSWORD) is not None

    r = viewer.post("/console/account/password",
                    {"current_password": PASSWORD, "new_password": "a brand new phrase"})
    assert r.status_code == 302
    assert viewer.get("/console/account").status_code == 200  # this session goes on
    r = other.get("/console/")  # the other one ends
    assert r.status_code == 302 and "/console/login" in r.headers["Location"]
    session.expire_all()
    assert authenticate(session, "viewer@news.example.org", PASSWORD) is None
    assert authenticate(session, "viewer@news.example.org", "a brand new phrase") is not None


def test_a_viewer_still_cannot_change_anything_else(viewer):
    # A token for reading is self-service (see tests/security/test_token_scopes.py);
    # one that could change things is not.
    r = viewer.post("/console/tokens", {"name": "mine", "scope": "write"})
    assert r.status_code == 403
