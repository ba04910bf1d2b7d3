"""The signup proof of work and the honeypot through the real routes (issue 15):
accepted once, refused when replayed, expired, forged or wrong (a clear form
error with a fresh challenge, nothing saved), switched on near the per-IP limit
in `auto`, and a honeypot that answers like a success and saves nothing."""

from __future__ import annotations

import re
import time

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select

from mailer import create_app
from mailer.common import challenge as pow_
from mailer.extensions import db, limiter
from mailer.jobs import RecordingDispatcher
from mailer.models import Reader
from mailer.web.public import SIGNUP_ANSWER
from tests.web.conftest import csrf_from


def _challenge_in(page: str) -> pow_.Challenge | None:
    match = re.search(r'name="challenge" value="([^"]+)"', page)
    if match is None:
        return None
    salt, digest, signature = match.group(1).split(":")
    expires, maximum, _ = salt.split(".")
    return pow_.Challenge(salt, digest, signature, int(maximum), int(expires))


def _readers(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count(Reader.id)))


@pytest.fixture
def always(settings_override):
    settings_override(signup_challenge="always", signup_challenge_difficulty=2000)


def test_the_form_carries_a_challenge_and_says_what_happens_without_javascript(client, always):
    page = client.get("/subscribe").get_data(as_text=True)
    challenge = _challenge_in(page)
    assert challenge is not None and challenge.max_number == 2000
    assert 'data-challenge' in page and "/static/challenge.js" in page
    noscript = re.search(r"<noscript>(.*?)</noscript>", page, re.S).group(1)
    assert "needs JavaScript" in noscript and "turn JavaScript on" in noscript


def test_without_a_challenge_due_the_form_has_none(client, settings_override):
    settings_override(signup_challenge="off")
    page = client.get("/subscribe").get_data(as_text=True)
    assert _challenge_in(page) is None and "challenge.js" not in page
    settings_override(signup_challenge="auto")  # the test app has no rate limits: never due
    assert _challenge_in(client.get("/subscribe").get_data(as_text=True)) is None


def test_a_solved_challenge_signs_up_once_and_a_replay_is_refused(client, session, dispatch,
                                                                   always):
    page = client.get("/subscribe").get_data(as_text=True)
    challenge, token = _challenge_in(page), csrf_from(page)
    answer = str(pow_.solve(challenge))
    form = {"email": "solved@example.org", "csrf_token": token, "challenge": challenge.value,
            "solution": answer}
    r = client.post("/subscribe", data=form)
    assert r.status_code == 200 and SIGNUP_ANSWER in r.get_data(as_text=True)
    assert _readers(session) == 1
    replay = client.post("/subscribe", data={**form, "email": "replay@example.org"})
    text = replay.get_data(as_text=True)
    assert replay.status_code == 422 and "did not pass" in text
    fresh = _challenge_in(text)
    assert fresh is not None and fresh.value != challenge.value  # a new one to solve
    assert 'value="replay@example.org"' in text  # what the reader typed is kept
    assert _readers(session) == 1


@pytest.mark.parametrize("case", ["missing", "expired", "forged", "wrong"])
def test_a_bad_challenge_is_a_clear_form_error_and_saves_nothing(client, session, dispatch,
                                                                  always, case):
    page = client.get("/subscribe").get_data(as_text=True)
    challenge = _challenge_in(page)
    fields = {"email": f"{case}@example.org", "csrf_token": csrf_from(page)}
    if case == "expired":
        old = pow_.issue("test-secret", 2000, now=time.time() - pow_.TTL_SECONDS - 5)
        fields |= {"challenge": old.value, "solution": str(pow_.solve(old))}
    elif case == "forged":
        other = pow_.issue("not-our-secret", 2000)
        fields |= {"challenge": other.value, "solution": str(pow_.solve(other))}
    elif case == "wrong":
        answer = pow_.solve(challenge)
        fields |= {"challenge": challenge.value, "solution": str((answer + 1) % 2001)}
    r = client.post("/subscribe", data=fields)
    text = r.get_data(as_text=True)
    assert r.status_code == 422
    assert 'role="alert"' in text and "automatic check" in text
    assert _challenge_in(text) is not None
    assert _readers(session) == 0
    assert "mailer.send_confirmations" not in dispatch.names()


def test_the_snippet_route_checks_the_same_way(client, session, dispatch, always):
    answer = client.get("/subscribe/challenge")
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Cache-Control"] == "no-store"
    data = answer.get_json()
    assert data["required"] is True and data["algorithm"] == "SHA-256"
    challenge = pow_.Challenge(data["salt"], data["digest"], data["challenge"].split(":")[2],
                               data["max"], 0)
    missing = client.post("/subscribe/embed", data={"email": "embed@example.org"})
    assert missing.status_code == 422
    page = missing.get_data(as_text=True)
    assert "needs JavaScript" in page and _challenge_in(page) is not None  # our form, no dead end
    assert _readers(session) == 0
    solved = client.post("/subscribe/embed", data={
        "email": "embed@example.org", "challenge": data["challenge"],
        "solution": str(pow_.solve(challenge))})
    assert solved.status_code == 200 and _readers(session) == 1


def test_the_snippet_asks_for_no_work_when_none_is_due(client, settings_override):
    settings_override(signup_challenge="auto")
    assert client.get("/subscribe/challenge").get_json() == {"required": False}


def test_auto_switches_the_challenge_on_near_the_per_ip_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILER_SIGNUP_RATE_LIMIT", "6 per minute")
    monkeypatch.setenv("MAILER_SIGNUP_CHALLENGE_DIFFICULTY", "2000")
    app = create_app(testing=True, ratelimit=True, instance_path=tmp_path,
                     database_url=f"sqlite:///{tmp_path / 'auto.db'}", broker_url="memory://",
                     smtp_url="", secret_key="k", base_url="http://mailer.test",
                     signup_min_seconds=0.0)
    try:
        with app.app_context():
            upgrade()
        app.extensions["dispatch"] = RecordingDispatcher()
        client = app.test_client()
        page = client.get("/subscribe").get_data(as_text=True)
        token = csrf_from(page)
        assert _challenge_in(page) is None
        for n in range(3):  # the first half of the window: no puzzle
            r = client.post("/subscribe", data={"email": f"a{n}@example.org", "csrf_token": token})
            assert r.status_code == 200, n
        page = client.get("/subscribe").get_data(as_text=True)
        challenge = _challenge_in(page)
        assert challenge is not None
        refused = client.post("/subscribe", data={"email": "late@example.org", "csrf_token": token})
        assert refused.status_code == 422 and _challenge_in(refused.get_data(as_text=True))
        solved = client.post("/subscribe", data={
            "email": "late@example.org", "csrf_token": token, "challenge": challenge.value,
            "solution": str(pow_.solve(challenge))})
        assert solved.status_code == 200
        assert client.get("/subscribe/challenge").get_json()["required"] is True
        # Another address has its own window.
        other = client.get("/subscribe", environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert _challenge_in(other.get_data(as_text=True)) is None
        with app.app_context():
            emails = set(db.session.scalars(select(Reader.email)))
        assert emails == {"a0@example.org", "a1@example.org", "a2@example.org", "late@example.org"}
    finally:
        limiter.enabled = False  # the shared test app runs without limits
        with app.app_context():
            db.engine.dispose()


@pytest.mark.parametrize("path", ["/subscribe", "/subscribe/embed"])
def test_the_honeypot_answers_like_a_success_and_saves_nothing(client, session, dispatch, path,
                                                               settings_override):
    settings_override(signup_challenge="off")
    token = csrf_from(client.get("/subscribe").get_data(as_text=True))
    trapped = client.post(path, data={"email": "bot@example.org", "csrf_token": token,
                                      "website": "http://spam.example"})
    real = client.post(path, data={"email": "person@example.org", "csrf_token": token,
                                   "website": ""})
    assert trapped.status_code == real.status_code == 200
    assert trapped.get_data(as_text=True) == real.get_data(as_text=True)
    session.expire_all()
    assert list(session.scalars(select(Reader.email))) == ["person@example.org"]
    assert dispatch.names().count("mailer.send_confirmations") == 1


def test_the_honeypot_is_hidden_from_people_and_screen_readers(client):
    for path in ("/subscribe", "/subscribe/snippet", "/archive"):
        page = client.get(path).get_data(as_text=True)
        trap = re.search(r'<div class="nl-trap" aria-hidden="true">(.*?)</div>', page, re.S)
        assert trap is not None, path
        field = re.search(r"<input [^>]*name=\"website\"[^>]*>", trap.group(1)).group(0)
        assert 'tabindex="-1"' in field and 'autocomplete="off"' in field, path
