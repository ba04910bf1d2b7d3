"""Console login hardening (issue 15): the same work for every address, a
throttle per address with a growing delay and a notice to the account, a login
limit shared by processes on the embedded default, sessions that end on the
server at logout, and `next=` values that never break the redirect."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from mailer.console import login_guard
from mailer.console.editors import authenticate
from mailer.models import utcnow
from tests.console.conftest import PASSWORD, login, new_client


@pytest.fixture
def scrypt_calls(monkeypatch):  # type: ignore[no-untyped-def]
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    login_guard.dummy_hash()  # computed once per process, before anyone measures
    return calls


def test_one_scrypt_for_known_and_unknown_addresses(session, editors, scrypt_calls):
    for email in ("editor@news.example.org", "nobody@news.example.org"):
        scrypt_calls.clear()
        assert login_guard.attempt_login(session, email, "wrong password!").editor is None
        assert len(scrypt_calls) == 1, email
        scrypt_calls.clear()
        assert authenticate(session, email, "wrong password!") is None
        assert len(scrypt_calls) == 1, email


def test_failed_logins_slow_the_address_down_and_notify_the_account(session, editors, dispatch,
                                                                   sender, rt):
    email = "editor@news.example.org"
    now = utcnow()
    for n in range(login_guard.FREE_FAILURES):
        result = login_guard.attempt_login(session, email, f"wrong {n}", now=now)
        assert result.editor is None and result.retry_after == 0
    # Past the free failures, even the right password waits out the delay.
    blocked = login_guard.attempt_login(session, email, PASSWORD, now=now + timedelta(seconds=1))
    assert blocked.editor is None and 0 < blocked.retry_after <= 30
    assert dispatch.names().count("mailer.send_login_notice") == 1
    later = now + timedelta(seconds=31)
    # One more failure doubles the delay.
    assert login_guard.attempt_login(session, email, "wrong again", now=later).editor is None
    again = login_guard.attempt_login(session, email, PASSWORD, now=later + timedelta(seconds=1))
    assert 30 < again.retry_after <= 60
    ok = login_guard.attempt_login(session, email, PASSWORD, now=later + timedelta(seconds=62))
    assert ok.editor is not None
    # The success forgets the failures.
    assert login_guard.attempt_login(session, email, "wrong", now=later + timedelta(seconds=63)
                                     ).retry_after == 0


def test_the_notice_goes_to_the_account_and_never_to_unknown_addresses(session, editors, sender,
                                                                       rt):
    from sqlalchemy import select

    from mailer.models import LoginThrottle

    now = utcnow()
    for email in ("editor@news.example.org", "nobody@news.example.org"):
        for n in range(login_guard.FREE_FAILURES):
            login_guard.attempt_login(session, email, f"wrong {n}", now=now)
    rows = {r.key_hash: r.id for r in session.scalars(select(LoginThrottle))}
    known = rows[login_guard.address_key("editor@news.example.org")]
    unknown = rows[login_guard.address_key("nobody@news.example.org")]
    assert login_guard.send_login_notice(session, rt.settings, sender, unknown) is None
    outcome = login_guard.send_login_notice(session, rt.settings, sender, known)
    assert outcome is not None and outcome.sent
    assert [m[1] for m in sender.messages] == ["editor@news.example.org"]
    assert b"log in to the newsletter console" in sender.messages[0][2]


def test_unknown_addresses_are_throttled_the_same_way(app, editors):
    client = new_client(app)
    codes = [login(client, "nobody@news.example.org", "wrong password!").status_code
             for _ in range(login_guard.FREE_FAILURES + 1)]
    known = new_client(app)
    known_codes = [login(known, "viewer@news.example.org", "wrong password!").status_code
                   for _ in range(login_guard.FREE_FAILURES + 1)]
    assert codes == known_codes == [401] * login_guard.FREE_FAILURES + [429]


def test_a_copied_session_cookie_stops_working_at_logout(app, editors):
    client = new_client(app)
    assert login(client, "admin@news.example.org").status_code == 302
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = new_client(app)
    thief.set_cookie("session", cookie.value)
    assert thief.get("/console/").status_code == 200
    from tests.console.conftest import csrf_from

    token = csrf_from(client.get("/console/").get_data(as_text=True))
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 302
    answer = thief.get("/console/")
    assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]


@pytest.mark.parametrize("target", ["/console/\r\nX-Evil: 1", "/console/%0d%0aX: 1\n",
                                    "/console/\x00", "/console/" + "a" * 5000, "/console/\u2028"])
def test_next_with_control_characters_never_breaks_the_login(app, editors, target):
    client = new_client(app)
    from tests.console.conftest import csrf_from

    token = csrf_from(client.get("/console/login?next=x").get_data(as_text=True))
    answer = client.post("/console/login", data={"email": "admin@news.example.org",
                                                 "password": PASSWORD, "next": target,
                                                 "csrf_token": token})
    assert answer.status_code == 302
    assert "\n" not in answer.headers["Location"] and "\r" not in answer.headers["Location"]
    assert client.get("/console/login", query_string={"next": target}).status_code in (200, 302)


CHILD = textwrap.dedent("""
    import sys
    from mailer import create_app
    app = create_app(testing=True, instance_path=sys.argv[1],
                     database_url="sqlite:///" + sys.argv[1] + "/x.db",
                     broker_url="memory://", secret_key="k")
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    codes = [client.post("/console/login", data={"email": f"c{n}@b.org", "password": "x"}
                         ).status_code for n in range(6)]
    print(",".join(map(str, codes)))
""")


def test_login_limit_is_shared_by_processes_on_the_embedded_default(tmp_path: Path):
    """Two processes, six attempts each, one limit of ten per minute: the
    second process sees what the first used up."""
    from flask_migrate import upgrade

    from mailer import create_app

    app = create_app(testing=True, instance_path=tmp_path, database_url=f"sqlite:///{tmp_path}/x.db",
                     broker_url="memory://", secret_key="k")
    with app.app_context():
        upgrade()
    root = Path(__file__).resolve().parents[2]
    codes = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], cwd=root,
                              capture_output=True, text=True, timeout=120, check=True)
        codes += [int(c) for c in done.stdout.strip().splitlines()[-1].split(",")]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
