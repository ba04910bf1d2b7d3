"""Reader flows through the web layer: embed snippet, confirm once, preference
centre (save, pause, address change, data download, erasure), resubscribe."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from mailer.common.tokens import Purpose
from mailer.models import Reader, ReaderEvent, ReaderStatus, Suppression
from mailer.readers import address_change, reader_link_token, subscriptions
from mailer.readers import import_export as readers_io
from tests.support import factories
from tests.web.conftest import csrf_from


def prefs_url(rt, reader) -> str:
    return f"/preferences/{reader_link_token(rt.tokens, Purpose.PREFERENCES, reader)}"


def test_embed_snippet_subscribes_in_one_step_with_double_opt_in(client, session, dispatch):
    snippet = client.get("/subscribe/snippet").get_data(as_text=True)
    assert 'action="http://mailer.test/subscribe/embed"' in snippet and "csrf_token" not in snippet
    r = client.post("/subscribe/embed", data={"email": "embed@example.org", "source": "homepage",
                                              "topics": ["nope"]},
                    headers={"Referer": "https://news.example.org/home"})
    assert r.status_code == 200 and "Check your inbox" in r.get_data(as_text=True)
    reader = session.scalar(select(Reader))
    assert reader.status == ReaderStatus.PENDING  # nothing is sent before the link is clicked
    assert reader.consent_source == "embed:https://news.example.org/home"
    assert reader.consent_ip == "127.0.0.1" and reader.consent_at is not None
    assert "mailer.send_confirmations" in dispatch.names()


def test_embed_honeypot_answers_the_same_and_writes_nothing(client, session):
    r = client.post("/subscribe/embed", data={"email": "bot@example.org", "website": "http://spam"})
    assert r.status_code == 200 and "Check your inbox" in r.get_data(as_text=True)
    assert session.scalar(select(func.count(Reader.id))) == 0


def test_embed_rejects_bad_email_with_the_form(client, session):
    r = client.post("/subscribe/embed", data={"email": "not an address"})
    assert r.status_code == 422 and "not valid" in r.get_data(as_text=True)


def test_same_answer_for_every_address_state(client, session):
    factories.reader(session, "confirmed@example.org")
    factories.reader(session, "pending@example.org", status=ReaderStatus.PENDING)
    factories.reader(session, "gone@example.org", status=ReaderStatus.UNSUBSCRIBED)
    subscriptions.suppress(session, "erased@example.org", "erased")
    session.commit()
    token = csrf_from(client.get("/subscribe").get_data(as_text=True))
    answers = {client.post("/subscribe", data={"email": e, "csrf_token": token}).get_data(as_text=True)
               for e in ("new@example.org", "confirmed@example.org", "pending@example.org",
                         "gone@example.org", "erased@example.org")}
    assert len(answers) == 1


def test_confirm_link_works_once(client, session, rt, dispatch):
    result = subscriptions.subscribe(session, email="once@example.org")
    reader = session.get(Reader, result.reader_id)
    token = subscriptions.confirmation_token(rt.tokens, reader)
    first = client.get(f"/confirm/{token}")
    assert first.status_code == 200 and "/preferences/" in first.get_data(as_text=True)
    again = client.get(f"/confirm/{token}")
    assert again.status_code == 200
    assert "already used" in again.get_data(as_text=True)
    assert "/preferences/" not in again.get_data(as_text=True)  # reuse grants nothing


def test_preferences_save_pause_and_resubscribe(client, session, rt, dispatch):
    local = factories.topic(session, "local", "Local")
    reader = factories.reader(session, "p@example.org")
    url = prefs_url(rt, reader)
    page = client.get(url).get_data(as_text=True)
    r = client.post(url, data={"csrf_token": csrf_from(page), "action": "save", "name": "Ada",
                               "topics": ["local"], "frequency": "paused"})
    assert r.status_code == 200 and "saved" in r.get_data(as_text=True)
    session.expire_all()
    reader = session.get(Reader, reader.id)
    assert (reader.name, reader.frequency, [t.slug for t in reader.topics]) == ("Ada", "paused", [local.slug])
    assert not reader.is_active
    assert client.post(url, data={"action": "save"}).status_code == 400  # no CSRF token

    subscriptions.unsubscribe(session, reader.id, source="test")
    page = client.get(url).get_data(as_text=True)
    assert "Subscribe again" in page
    r = client.post(url, data={"csrf_token": csrf_from(page), "action": "resubscribe"})
    assert r.status_code == 200
    session.expire_all()
    assert session.get(Reader, reader.id).status == ReaderStatus.PENDING  # re-confirms
    assert "mailer.send_confirmations" in dispatch.names()


def test_address_change_reconfirms_the_new_address(client, session, rt, dispatch, sender):
    reader = factories.reader(session, "old@example.org")
    url = prefs_url(rt, reader)
    page = client.get(url).get_data(as_text=True)
    r = client.post(url, data={"csrf_token": csrf_from(page), "action": "change-email",
                               "new_email": "New@Example.org"})
    assert r.status_code == 200
    session.expire_all()
    reader = session.get(Reader, reader.id)
    assert reader.email == "old@example.org" and reader.pending_email == "New@example.org"
    assert dispatch.names() == ["mailer.send_email_change"]

    from mailer.readers import confirmations as transactional
    outcome = transactional.send_email_change(session, rt.settings, rt.tokens, sender, reader.id)
    assert outcome is not None and sender.messages[0][1] == "New@example.org"
    body = sender.messages[0][2].decode()
    assert "/change-email/" in body

    token = address_change.change_token(rt.tokens, reader)
    assert client.get(f"/change-email/{token}").status_code == 200
    session.expire_all()
    reader = session.get(Reader, reader.id)
    assert reader.email == "New@example.org" and reader.email_key == "new@example.org"
    assert client.get(f"/change-email/{token}").status_code == 404  # single use
    # A change token is not a confirm, unsubscribe or preferences token.
    for path in ("/confirm/", "/unsubscribe/", "/preferences/"):
        assert client.get(path + token).status_code == 404


def test_address_change_to_a_taken_address_changes_nothing(client, session, rt, dispatch,
                                                           sender):
    factories.reader(session, "taken@example.org")
    reader = factories.reader(session, "mine@example.org")
    url = prefs_url(rt, reader)
    page = client.get(url).get_data(as_text=True)
    r = client.post(url, data={"csrf_token": csrf_from(page), "action": "change-email",
                               "new_email": "taken@example.org"})
    assert r.status_code == 200  # same answer as for a free address
    # The same work as for a free address; the email task then mails nobody.
    assert dispatch.names() == ["mailer.send_email_change"]
    from mailer.readers import confirmations as transactional
    assert transactional.send_email_change(session, rt.settings, rt.tokens, sender,
                                           reader.id) is None
    assert sender.messages == []
    session.expire_all()
    assert session.get(Reader, reader.id).email == "mine@example.org"
    r = client.post(url, data={"csrf_token": csrf_from(page), "action": "change-email",
                               "new_email": "bad\r\nBcc: x@y"})
    assert r.status_code == 422


def test_data_download_and_erasure(client, session, rt, dispatch):
    reader = factories.reader(session, "erase.me@example.org", name="Erin")
    session.add(ReaderEvent(reader_id=reader.id, kind="subscribed", detail={"ip": "10.0.0.9"}))
    session.commit()
    url = prefs_url(rt, reader)
    data = client.get(f"{url}/data.json")
    assert data.status_code == 200 and "attachment" in data.headers["Content-Disposition"]
    exported = json.loads(data.get_data())
    assert exported["reader"]["email"] == "erase.me@example.org"
    assert exported["events"][0]["detail"] == {"ip": "10.0.0.9"}

    page = client.get(url).get_data(as_text=True)
    r = client.post(url, data={"csrf_token": csrf_from(page), "action": "erase"})
    assert r.status_code == 422  # the box was not ticked
    r = client.post(url, data={"csrf_token": csrf_from(page), "action": "erase", "confirm_erase": "yes"})
    assert r.status_code == 200 and "deleted" in r.get_data(as_text=True)
    session.expire_all()
    assert session.scalar(select(func.count(Reader.id))) == 0
    events = session.scalars(select(ReaderEvent)).all()
    assert all(e.reader_id is None and e.detail == {} for e in events)
    assert session.scalar(select(Suppression.reason)) == "erased"
    stored = " ".join(str(v) for e in events for v in (e.detail, e.note))
    assert "erase.me" not in stored and "10.0.0.9" not in stored
    assert client.get(url).status_code == 404

    # An erased address is neither re-imported nor re-subscribed.
    report = readers_io.import_readers(session, "email\nErase.Me@example.org\n", consent=True)
    assert (report.created, report.suppressed) == (0, 1)
    subscriptions.subscribe(session, email="erase.me@example.org")
    assert session.scalar(select(func.count(Reader.id))) == 0


def test_every_signup_answer_is_padded_to_the_same_minimum(client, session, monkeypatch, dispatch, settings_override):
    """Behaviour, not timing: each successful answer waits out the rest of the
    configured minimum, whatever state the address was in."""
    import importlib

    public_module = importlib.import_module("mailer.web.public")

    waits: list[float] = []
    monkeypatch.setattr(public_module.time, "sleep", waits.append)
    settings_override(signup_min_seconds=30.0)
    factories.reader(session, "known@example.org")
    token = csrf_from(client.get("/subscribe").get_data(as_text=True))
    for email in ("fresh@example.org", "known@example.org"):
        assert client.post("/subscribe", data={"email": email, "csrf_token": token}).status_code == 200
    assert len(waits) == 2 and all(25 < w <= 30 for w in waits)
    client.post("/subscribe", data={"email": "bad", "csrf_token": token})
    assert len(waits) == 2  # a form error answers at once


def test_one_click_unsubscribe_is_recorded_once_and_repeatable(client, session, rt):
    reader = factories.reader(session, "leaver@example.org")
    token = reader_link_token(rt.tokens, Purpose.UNSUBSCRIBE, reader)
    for _ in range(2):
        r = client.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                        content_type="application/x-www-form-urlencoded")
        assert r.status_code == 200 and "leaver@example.org" in r.get_data(as_text=True)
    session.expire_all()
    events = session.scalars(select(ReaderEvent).where(ReaderEvent.kind == "unsubscribed")).all()
    assert [(e.reader_id, e.detail) for e in events] == [(reader.id, {"source": "one-click"})]
    assert session.get(Reader, reader.id).unsubscribed_at is not None
