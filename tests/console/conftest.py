"""Console fixtures: editors of each role and test clients logged in as them."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from flask import Flask, g, has_app_context
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from mailer.console.editors import create_editor
from mailer.models import Editor, Role

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class IsolatedClient(FlaskClient):
    """Tests run inside one app context, so `g` (where Flask-Login caches the
    user and Flask-WTF its token) outlives a request; a real server starts each request afresh."""

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._forget()
        try:
            return super().open(*args, **kwargs)
        finally:
            self._forget()

    @staticmethod
    def _forget() -> None:
        if has_app_context():
            for key in ("_login_user", "csrf_token"):  # Flask-Login, Flask-WTF caches
                g.pop(key, None)


def new_client(app: Flask) -> FlaskClient:
    return IsolatedClient(app, app.response_class, use_cookies=True)


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@dataclass
class Console:
    client: FlaskClient
    editor: Editor | None = None

    def csrf(self) -> str:
        page = "/console/" if self.editor else "/console/login"
        return csrf_from(self.client.get(page).get_data(as_text=True))

    def get(self, path: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict | None = None, csrf: bool = True, **kw):  # type: ignore[no-untyped-def]
        data = dict(data or {})
        if csrf:
            data["csrf_token"] = self.csrf()
        return self.client.post(path, data=data, **kw)


def login(client: FlaskClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/console/login").get_data(as_text=True))
    return client.post("/console/login", data={"email": email, "password": password,
                                               "csrf_token": token})


@pytest.fixture
def editors(session: Session) -> dict[str, Editor]:
    return {role: create_editor(session, f"{role}@news.example.org", PASSWORD, role)
            for role in Role.ALL}


def _console(app: Flask, editors: dict[str, Editor], role: str | None) -> Console:
    client = new_client(app)
    if role is None:
        return Console(client)
    r = login(client, editors[role].email)
    assert r.status_code == 302, r.get_data(as_text=True)
    return Console(client, editors[role])


@pytest.fixture
def admin(app: Flask, editors: dict[str, Editor], dispatch) -> Console:  # type: ignore[no-untyped-def]
    return _console(app, editors, Role.ADMIN)


@pytest.fixture
def editor(app: Flask, editors: dict[str, Editor], dispatch) -> Console:  # type: ignore[no-untyped-def]
    return _console(app, editors, Role.EDITOR)


@pytest.fixture
def viewer(app: Flask, editors: dict[str, Editor], dispatch) -> Console:  # type: ignore[no-untyped-def]
    return _console(app, editors, Role.VIEWER)


@pytest.fixture
def anonymous(app: Flask, dispatch) -> Console:  # type: ignore[no-untyped-def]
    return Console(new_client(app))
