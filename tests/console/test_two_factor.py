"""Two-factor (TOTP) login for console editors, with codes computed by pyotp."""

from __future__ import annotations

import re
import time

import pyotp
from sqlalchemy import select

from mailer.console.login_guard import address_key
from mailer.models import AuditEvent, Editor, LoginThrottle, RecoveryCode
from tests.console.conftest import PASSWORD, Console, csrf_from, login, new_client

SECRET_RE = re.compile(r'class="totp-secret">([A-Z2-7]+)<')
CODES_RE = re.compile(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>")


def post(console: Console, path: str, data: dict | None = None):  # type: ignore[no-untyped-def]
    """A form post with the CSRF token from the account page (reachable even while
    admins hold an account there until it has 2FA)."""
    token = csrf_from(console.get("/console/account").get_data(as_text=True))
    return console.client.post(path, data={**(data or {}), "csrf_token": token})


def enable(console: Console) -> tuple[str, list[str]]:
    """Turn 2FA on for the logged-in account; the secret and recovery codes."""
    r = post(console, "/console/account/two-factor")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    secret = SECRET_RE.search(html).group(1)
    assert "otpauth://totp/" in html
    r = post(console, "/console/account/two-factor/confirm", {"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200, r.get_data(as_text=True)
    codes = CODES_RE.findall(r.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def code_step(client, code: str):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/console/login/code").get_data(as_text=True))
    return client.post("/console/login/code", data={"code": code, "csrf_token": token})


def next_code(secret: str) -> str:
    """A code for the next 30-second step (within the accepted drift), unused so far."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def test_enable_then_login_needs_a_code(app, editor, session) -> None:
    secret, codes = enable(editor)
    row = session.scalar(select(Editor).where(Editor.email == editor.editor.email))
    session.refresh(row)
    assert row.totp_secret == secret
    # Only hashes stored.
    hashes = session.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.editor_id == row.id)).all()
    assert len(hashes) == 10 and not set(hashes) & set(codes)

    client = new_client(app)
    r = login(client, editor.editor.email)
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/login/code")
    # Half logged in: no console access.
    assert client.get("/console/").status_code == 302
    assert "/console/login" in client.get("/console/account").headers["Location"]
    r = code_step(client, next_code(secret))
    assert r.status_code == 302, r.get_data(as_text=True)
    assert client.get("/console/").status_code == 200


def test_wrong_code_refused_and_throttled(app, editor, session) -> None:
    secret, _ = enable(editor)
    client = new_client(app)
    login(client, editor.editor.email)
    r = code_step(client, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    assert r.status_code == 401
    assert "not right" in r.get_data(as_text=True)
    assert client.get("/console/").status_code == 302
    throttle = session.scalar(select(LoginThrottle).where(
        LoginThrottle.key_hash == address_key(editor.editor.email)))
    assert throttle is not None and throttle.failures == 1
    for _ in range(5):
        code_step(client, "12345x")
    r = code_step(client, next_code(secret))
    assert r.status_code == 429  # blocked even with a right code
    assert client.get("/console/").status_code == 302


def test_replayed_code_refused(app, editor) -> None:
    secret, _ = enable(editor)
    code = next_code(secret)
    first = new_client(app)
    login(first, editor.editor.email)
    assert code_step(first, code).status_code == 302
    second = new_client(app)
    login(second, editor.editor.email)
    assert code_step(second, code).status_code == 401
    assert second.get("/console/").status_code == 302


def test_recovery_code_works_once(app, editor, session) -> None:
    _, codes = enable(editor)
    client = new_client(app)
    login(client, editor.editor.email)
    assert code_step(client, codes[0].upper()).status_code == 302
    assert client.get("/console/").status_code == 200
    assert session.scalar(select(AuditEvent).where(
        AuditEvent.action == "two_factor.recovery_code_used")) is not None
    again = new_client(app)
    login(again, editor.editor.email)
    assert code_step(again, codes[0]).status_code == 401


def test_disable_needs_password_and_code(app, editor, session) -> None:
    secret, codes = enable(editor)
    r = editor.post("/console/account/two-factor/disable", {"password": "wrong one!!", "code": codes[1]})
    assert r.status_code == 400 and "password" in r.get_data(as_text=True)
    r = editor.post("/console/account/two-factor/disable", {"password": PASSWORD, "code": "999999x"})
    assert r.status_code == 400
    r = editor.post("/console/account/two-factor/disable", {"password": PASSWORD, "code": next_code(secret)})
    assert r.status_code == 302
    client = new_client(app)
    r = login(client, editor.editor.email)
    assert r.status_code == 302 and "/login/code" not in r.headers["Location"]
    assert session.scalar(select(RecoveryCode).limit(1)) is None


def test_confirm_with_wrong_code_keeps_it_off(editor, session) -> None:
    editor.post("/console/account/two-factor")
    r = editor.post("/console/account/two-factor/confirm", {"code": "abc"})
    assert r.status_code == 400 and "not right" in r.get_data(as_text=True)
    row = session.scalar(select(Editor).where(Editor.email == editor.editor.email))
    session.refresh(row)
    assert row.totp_secret is None


def test_forms_need_csrf(editor) -> None:
    assert editor.post("/console/account/two-factor", csrf=False).status_code == 400


def test_admin_can_require_two_factor(app, admin, editors) -> None:
    r = admin.post("/console/editors/two-factor", {"required": "1"})
    assert r.status_code == 302
    client = new_client(app)
    r = login(client, editors["editor"].email)
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/account")
    # Nothing else until done.
    r = client.get("/console/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/account")
    ed = Console(client, editors["editor"])
    secret, _ = enable(ed)
    assert client.get("/console/").status_code == 200
    # Cannot turn it off while required.
    r = post(ed, "/console/account/two-factor/disable", {"password": PASSWORD, "code": next_code(secret)})
    assert r.status_code == 409
    # The admin without 2FA is held too.
    assert admin.get("/console/editors").status_code == 302


def test_admin_resets_another_accounts_two_factor(app, admin, editor, session) -> None:
    enable(editor)
    r = admin.post(f"/console/editors/{editor.editor.id}/two-factor/reset")
    assert r.status_code == 302
    assert editor.get("/console/").status_code == 302  # logged out
    client = new_client(app)
    r = login(client, editor.editor.email)
    assert r.status_code == 302 and "/login/code" not in r.headers["Location"]
    assert session.scalar(select(RecoveryCode).limit(1)) is None
    assert admin.post(f"/console/editors/{admin.editor.id}/two-factor/reset").status_code == 409
