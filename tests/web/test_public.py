from __future__ import annotations

import re

from sqlalchemy import select

from mailer.common.tokens import Purpose
from mailer.models import Reader, ReaderStatus
from mailer.readers import reader_link_token
from tests.support import factories


def csrf_token(client, path="/subscribe"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_subscribe_needs_csrf(client):
    r = client.post("/subscribe", data={"email": "a@example.org"})
    assert r.status_code == 400
    assert client.application.extensions["mailer"] is not None


def test_subscribe_form_answers_the_same_for_new_and_known(client, session):
    factories.reader(session, "known@example.org")
    token = csrf_token(client)
    new = client.post("/subscribe", data={"email": "new@example.org", "csrf_token": token})
    known = client.post("/subscribe", data={"email": "known@example.org", "csrf_token": token})
    assert new.status_code == known.status_code == 200
    strip = lambda r: r.get_data(as_text=True)  # noqa: E731
    assert strip(new) == strip(known)


def test_invalid_email_shows_the_form_again(client):
    r = client.post("/subscribe", data={"email": "nope", "csrf_token": csrf_token(client)})
    assert r.status_code == 422 and "not valid" in r.get_data(as_text=True)


def test_bad_tokens_get_4xx_pages(client):
    for path in ("/confirm/garbage", "/unsubscribe/garbage", "/preferences/garbage"):
        assert client.get(path).status_code == 404
    assert client.post("/unsubscribe/garbage").status_code == 404


def test_one_click_unsubscribe_without_cookie_or_csrf(client, session, rt):
    reader = factories.reader(session)
    token = reader_link_token(rt.tokens, Purpose.UNSUBSCRIBE, reader)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    session.refresh(reader)
    assert reader.status == ReaderStatus.CONFIRMED  # GET never unsubscribes
    r = client.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200
    session.expire_all()
    assert session.scalar(select(Reader.status).where(Reader.id == reader.id)) == "unsubscribed"


def test_confirm_token_cannot_unsubscribe(client, session, rt):
    reader = factories.reader(session)
    token = rt.tokens.make(Purpose.CONFIRM, {"r": reader.id, "n": reader.confirm_nonce})
    assert client.post(f"/unsubscribe/{token}").status_code == 404


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json["status"] == "ok"
