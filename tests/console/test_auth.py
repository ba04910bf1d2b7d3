"""Accounts: login, session renewal, cookies, logout, role decorators, API tokens."""

from __future__ import annotations

from sqlalchemy import select

from mailer.console.api_tokens import check_token
from mailer.models import ApiToken
from tests.console.conftest import PASSWORD, csrf_from, login, new_client


def test_login_renews_session_and_sets_safe_cookies(app, editors):
    client = new_client(app)
    with client.session_transaction() as s:
        s["planted"] = "by someone else"  # e.g. a fixated session
    r = login(client, "editor@news.example.org")
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with client.session_transaction() as s:
        assert "planted" not in s
        assert s["_user_id"] == editors["editor"].get_id()
    assert client.get("/console/").status_code == 200


def test_secure_cookie_behind_https(tmp_path):
    from mailer import create_app

    app = create_app(testing=True, ratelimit=False, instance_path=tmp_path,
                     database_url=f"sqlite:///{tmp_path}/x.db", broker_url="memory://", secret_key="k",
                     base_url="https://news.example.org")
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_wrong_password_and_inactive_editor_are_refused(app, editors, session):
    client = new_client(app)
    r = login(client, "editor@news.example.org", "wrong password!")
    assert r.status_code == 401 and "Wrong email or password" in r.get_data(as_text=True)
    editors["editor"].active = False
    session.commit()
    assert login(client, "editor@news.example.org").status_code == 401
    assert login(client, "nobody@news.example.org").status_code == 401
    assert client.get("/console/").status_code == 302


def test_next_parameter_never_redirects_off_site(app, editors):
    for target, expected in [("/console/readers", "/console/readers"),
                             ("https://evil.example/", "/console/"),
                             ("//evil.example/x", "/console/"),
                             ("/console\\@evil.example", "/console/"),
                             ("/archive", "/console/")]:
        client = new_client(app)
        token = csrf_from(client.get("/console/login").get_data(as_text=True))
        r = client.post("/console/login", data={"email": "admin@news.example.org",
                                                "password": PASSWORD, "next": target,
                                                "csrf_token": token})
        assert r.status_code == 302
        assert r.headers["Location"] == expected, target


def test_logout(admin):
    r = admin.post("/console/logout")
    assert r.status_code == 302 and "/console/login" in r.headers["Location"]
    assert admin.get("/console/").status_code == 302


def test_login_is_rate_limited(tmp_path):
    from mailer import create_app

    app = create_app(testing=True, instance_path=tmp_path, database_url=f"sqlite:///{tmp_path}/x.db",
                     broker_url="memory://", secret_key="k")
    app.config["WTF_CSRF_ENABLED"] = False
    with app.app_context():
        from mailer.extensions import db

        db.create_all()
    client = new_client(app)
    # Other addresses each time: this is the per-IP limit, not the per-address throttle.
    codes = [client.post("/console/login", data={"email": f"a{n}@b.org", "password": "x"}).status_code
             for n in range(12)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429


def test_api_token_shown_once_and_revoked(editor, session):
    r = editor.post("/console/tokens", {"name": "automation"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    token = html.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert token.startswith("mlr_") and check_token(session, token)
    # Not shown again.
    assert token not in editor.get("/console/tokens").get_data(as_text=True)
    row = session.scalar(select(ApiToken).where(ApiToken.name == "automation"))
    assert editor.post(f"/console/tokens/{row.id}/revoke").status_code == 302
    assert not check_token(session, token)


def test_editor_cannot_revoke_someone_elses_token(editor, admin, session):
    from mailer.console.api_tokens import create_token

    create_token(session, "admin's", editor_id=admin.editor.id)
    row = session.scalar(select(ApiToken).where(ApiToken.name == "admin's"))
    assert editor.post(f"/console/tokens/{row.id}/revoke").status_code == 403
    assert admin.post(f"/console/tokens/{row.id}/revoke").status_code == 302
