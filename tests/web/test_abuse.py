"""Abuse: form floods, per-IP limits, forged and misused tokens."""

from __future__ import annotations

import itertools

import pytest
from flask_migrate import upgrade
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from mailer import create_app
from mailer.common.tokens import Purpose
from mailer.extensions import db, limiter
from mailer.jobs import RecordingDispatcher
from mailer.models import Reader, ReaderStatus
from mailer.readers import reader_link_token
from tests.support import factories
from tests.web.conftest import csrf_from


def test_hundred_posts_for_one_address_send_at_most_one_confirmation(client, session, dispatch):
    token = csrf_from(client.get("/subscribe").get_data(as_text=True))
    spellings = ["flood@example.org", "FLOOD@example.org", "Flood@Example.ORG", " flood@example.org "]
    for _, email in zip(range(100), itertools.cycle(spellings), strict=False):
        r = client.post("/subscribe", data={"email": email, "csrf_token": token})
        assert r.status_code == 200
    assert dispatch.names().count("mailer.send_confirmations") == 1
    assert session.scalar(select(func.count(Reader.id))) == 1


def test_per_ip_limit_answers_429_with_a_readable_page(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILER_SIGNUP_RATE_LIMIT", "3 per minute")
    monkeypatch.setenv("MAILER_SIGNUP_CHALLENGE", "off")  # the limit alone (tests/web/test_signup_challenge.py)
    app = create_app(testing=True, ratelimit=True, instance_path=tmp_path,
                     database_url=f"sqlite:///{tmp_path / 'limits.db'}", broker_url="memory://",
                     smtp_url="", secret_key="k", base_url="http://mailer.test")
    try:
        with app.app_context():
            upgrade()
        app.extensions["dispatch"] = RecordingDispatcher()
        client = app.test_client()
        token = csrf_from(client.get("/subscribe").get_data(as_text=True))
        codes = [client.post("/subscribe", data={"email": f"x{n}@example.org", "csrf_token": token}).status_code
                 for n in range(4)]
        assert codes == [200, 200, 200, 429]
        r = client.post("/subscribe/embed", data={"email": "y@example.org"})
        assert r.status_code == 429
        page = r.get_data(as_text=True)
        assert "Please slow down" in page and '<html lang="en">' in page
        assert int(r.headers["Retry-After"]) > 0
        # Another address does not reset the per-IP budget; another IP has its own.
        other = client.post("/subscribe/embed", data={"email": "z@example.org"},
                            environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert other.status_code == 200
    finally:
        limiter.enabled = False  # the shared test app runs without limits
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def pending(session):
    return factories.reader(session, "pending@example.org", status=ReaderStatus.PENDING)


def test_tokens_only_work_for_their_own_purpose(client, session, rt, pending):
    reader = factories.reader(session, "active@example.org")
    tokens = {
        Purpose.CONFIRM: rt.tokens.make(Purpose.CONFIRM, {"r": pending.id, "n": pending.confirm_nonce}),
        Purpose.UNSUBSCRIBE: reader_link_token(rt.tokens, Purpose.UNSUBSCRIBE, reader),
        Purpose.PREFERENCES: reader_link_token(rt.tokens, Purpose.PREFERENCES, reader),
        Purpose.CHANGE_EMAIL: rt.tokens.make(Purpose.CHANGE_EMAIL, {"r": reader.id, "e": "x@example.org"}),
    }
    routes = {Purpose.CONFIRM: ("GET", "/confirm/"), Purpose.UNSUBSCRIBE: ("POST", "/unsubscribe/"),
              Purpose.PREFERENCES: ("GET", "/preferences/"), Purpose.CHANGE_EMAIL: ("GET", "/change-email/")}
    for purpose, (method, prefix) in routes.items():
        for other, token in tokens.items():
            if other == purpose:
                continue
            r = client.open(prefix + token, method=method)
            assert r.status_code == 404, (purpose, other)
    session.expire_all()
    assert session.get(Reader, reader.id).status == ReaderStatus.CONFIRMED
    assert session.get(Reader, pending.id).status == ReaderStatus.PENDING


def test_forged_and_tampered_tokens_are_refused(client, session, rt, pending):
    reader = factories.reader(session, "victim@example.org")
    good = reader_link_token(rt.tokens, Purpose.UNSUBSCRIBE, reader)
    forged = URLSafeTimedSerializer("not-our-secret", salt="mailer.unsubscribe").dumps({"r": reader.id})
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    # Swap the payload of a valid token for another reader's id, keeping the signature.
    body, _, rest = good.partition(".")
    other = URLSafeTimedSerializer("x", salt="y").dumps({"r": pending.id}).partition(".")[0]
    swapped = other + "." + rest
    for token in (forged, tampered, swapped, "", "a" * 5000, "%00", "..", body):
        r = client.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                        content_type="application/x-www-form-urlencoded")
        assert r.status_code in (404, 405), token[:30]
    session.expire_all()
    assert session.get(Reader, reader.id).status == ReaderStatus.CONFIRMED
    confirm = rt.tokens.make(Purpose.CONFIRM, {"r": pending.id, "n": "guessed-nonce"})
    assert client.get(f"/confirm/{confirm}").status_code == 404


def test_confirm_links_from_before_an_unsubscribe_do_not_resubscribe(client, session, rt, pending):
    token = rt.tokens.make(Purpose.CONFIRM, {"r": pending.id, "n": pending.confirm_nonce})
    unsub = reader_link_token(rt.tokens, Purpose.UNSUBSCRIBE, pending)
    assert client.post(f"/unsubscribe/{unsub}").status_code == 200
    assert client.get(f"/confirm/{token}").status_code == 404
    session.expire_all()
    assert session.get(Reader, pending.id).status == ReaderStatus.UNSUBSCRIBED


def test_confirm_and_change_links_expire_after_48_hours(client, session, rt, pending, monkeypatch):
    import itsdangerous.timed

    reader = factories.reader(session, "mover@example.org")
    reader.pending_email = "moved@example.org"
    session.commit()
    real_time = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() - 48 * 3600 - 60)
    confirm = rt.tokens.make(Purpose.CONFIRM, {"r": pending.id, "n": pending.confirm_nonce})
    change = rt.tokens.make(Purpose.CHANGE_EMAIL, {"r": reader.id, "e": "moved@example.org"})
    unsubscribe = reader_link_token(rt.tokens, Purpose.UNSUBSCRIBE, reader)
    monkeypatch.setattr(itsdangerous.timed.time, "time", real_time)
    r = client.get(f"/confirm/{confirm}")
    assert r.status_code == 410 and "expired" in r.get_data(as_text=True)
    assert client.get(f"/change-email/{change}").status_code == 410
    assert client.get(f"/unsubscribe/{unsubscribe}").status_code == 200  # old emails keep working
    session.expire_all()
    assert session.get(Reader, pending.id).status == ReaderStatus.PENDING
    assert session.get(Reader, reader.id).email == "mover@example.org"
