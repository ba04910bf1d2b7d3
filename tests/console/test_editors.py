"""The accounts page (admins only): create, change role, deactivate, reactivate, set a password."""

from __future__ import annotations

from sqlalchemy import select

from mailer.console.editors import authenticate
from mailer.models import Editor, Role
from tests.console.conftest import PASSWORD, login, new_client


def accounts(session) -> list[tuple[str, str, bool, str]]:  # type: ignore[no-untyped-def]
    session.expire_all()
    return [(e.email, e.role, e.active, e.password_hash)
            for e in session.scalars(select(Editor).order_by(Editor.id))]


def test_admin_lists_accounts_and_only_admins_see_the_link(admin, editor, viewer):
    page = admin.get("/console/editors").get_data(as_text=True)
    for role in Role.ALL:
        assert f"{role}@news.example.org" in page
    assert "(you)" in page and "deactivated" not in page.split("<table", 1)[1]
    assert 'href="/console/editors"' in page
    assert 'href="/console/editors"' not in editor.get("/console/").get_data(as_text=True)
    assert 'href="/console/editors"' not in viewer.get("/console/").get_data(as_text=True)
    assert editor.get("/console/editors").status_code == 403


def test_create_an_account_and_refuse_bad_input(app, admin, session):
    r = admin.post("/console/editors", {"email": "New.Reporter@news.example.org", "role": "viewer",
                                        "password": "a good long password"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/editors")
    assert "new.reporter@news.example.org (viewer) created" in admin.get(
        "/console/editors").get_data(as_text=True)
    assert login(new_client(app), "new.reporter@news.example.org",
                 "a good long password").status_code == 302
    before = accounts(session)
    for form, status, message in [
        ({"email": "x@news.example.org", "role": "editor", "password": "short"}, 400,
         "at least 10 characters"),
        ({"email": "NEW.reporter@news.example.org", "role": "editor", "password": PASSWORD}, 409,
         "exists already"),
        ({"email": "not an address", "role": "editor", "password": PASSWORD}, 400, "not valid"),
        ({"email": "x@news.example.org", "role": "owner", "password": PASSWORD}, 400,
         "Role must be one of"),
        ({}, 400, "enter an email address"),
    ]:
        r = admin.post("/console/editors", form)
        page = r.get_data(as_text=True)
        assert r.status_code == status and message in page, (form, r.status_code)
        assert PASSWORD not in page  # a typed password is never sent back
    assert accounts(session) == before


def test_change_role(admin, editors, session):
    eve = editors["editor"]
    r = admin.post(f"/console/editors/{eve.id}/role", {"role": "admin"}, follow_redirects=True)
    assert r.status_code == 200 and "editor@news.example.org is now admin" in r.get_data(as_text=True)
    assert session.get(Editor, eve.id).role == Role.ADMIN
    before = accounts(session)
    for url, form, status in [
        (f"/console/editors/{eve.id}/role", {"role": "owner"}, 400),
        (f"/console/editors/{eve.id}/role", {}, 400),
        ("/console/editors/999999/role", {"role": "viewer"}, 404),
    ]:
        assert admin.post(url, form).status_code == status, (url, form)
    assert accounts(session) == before


def test_admin_cannot_demote_or_deactivate_themself(admin, session):
    me = admin.editor.id
    before = accounts(session)
    page = admin.get("/console/editors").get_data(as_text=True)
    assert f"/console/editors/{me}/deactivate" not in page and f"/console/editors/{me}/role" not in page
    for url, form in [(f"/console/editors/{me}/role", {"role": "editor"}),
                      (f"/console/editors/{me}/deactivate", {})]:
        r = admin.post(url, form)
        assert r.status_code == 409 and "ask another admin" in r.get_data(as_text=True), url
    assert accounts(session) == before


def test_deactivated_editor_is_logged_out_and_can_be_reactivated(app, admin, editor, editors, session):
    eve = editors["editor"]
    token = editor.csrf()  # taken while still logged in
    r = admin.post(f"/console/editors/{eve.id}/deactivate", follow_redirects=True)
    assert "deactivated" in r.get_data(as_text=True)
    # The open session ends on its next request, and logging in again is refused.
    r = editor.get("/console/")
    assert r.status_code == 302 and "/console/login" in r.headers["Location"]
    r = editor.client.post("/console/tokens", data={"name": "sneaky", "csrf_token": token})
    assert r.status_code == 302 and "/console/login" in r.headers["Location"]
    assert login(new_client(app), eve.email).status_code == 401
    assert admin.post(f"/console/editors/{eve.id}/reactivate").status_code == 302
    assert login(new_client(app), eve.email).status_code == 302
    # The session from before the deactivation does not come back with the account.
    r = editor.get("/console/")
    assert r.status_code == 302 and "/console/login" in r.headers["Location"]


def test_set_a_new_password(app, admin, editor, editors, session):
    eve = editors["editor"]
    assert editor.get("/console/").status_code == 200
    before = accounts(session)
    r = admin.post(f"/console/editors/{eve.id}/password", {"password": "tooshort"})
    assert r.status_code == 400 and "at least 10 characters" in r.get_data(as_text=True)
    assert admin.post(f"/console/editors/{eve.id}/password", {"password": "y" * 1001}).status_code == 400
    assert accounts(session) == before
    assert admin.post(f"/console/editors/{eve.id}/password",
                      {"password": "the new secret phrase"}).status_code == 302
    assert authenticate(session, eve.email, PASSWORD) is None
    assert login(new_client(app), eve.email, "the new secret phrase").status_code == 302
    # Sessions opened with the old password end.
    r = editor.get("/console/")
    assert r.status_code == 302 and "/console/login" in r.headers["Location"]
