"""Reader pages without dead ends, through the Flask client: /link, broken links,
re-signup, the unsubscribe page's choices and reasons, the snippet, the archive."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mailer.common.tokens import Purpose
from mailer.models import Frequency, Reader, ReaderEvent, ReaderStatus
from mailer.readers import erase_reader
from mailer.readers.links import reader_link_token
from tests.support import factories
from tests.web.conftest import csrf_from
from tests.web.test_archive import sent_edition


def unsub_url(rt, reader) -> str:
    return f"/unsubscribe/{reader_link_token(rt.tokens, Purpose.UNSUBSCRIBE, reader)}"


def test_link_page_answers_the_same_for_every_address(client, session, dispatch):
    factories.reader(session, "confirmed@example.org")
    factories.reader(session, "pending@example.org", status=ReaderStatus.PENDING)
    page = client.get("/link")
    assert page.status_code == 200 and "Email me a new link" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    answers = {client.post("/link", data={"email": e, "csrf_token": token}).get_data(as_text=True)
               for e in ("confirmed@example.org", "pending@example.org", "nobody@example.org")}
    assert len(answers) == 1 and "new link is on its way" in answers.pop()
    assert "mailer.send_reader_link" in dispatch.names()


@pytest.mark.parametrize("email", ["", "not an address", "a@b", "x" * 400 + "@example.org"])
def test_link_page_names_the_field_on_bad_input(client, email):
    token = csrf_from(client.get("/link").get_data(as_text=True))
    r = client.post("/link", data={"email": email, "csrf_token": token})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert 'aria-invalid="true"' in html and 'id="email-error"' in html


def test_link_post_needs_csrf(client, dispatch):
    assert client.post("/link", data={"email": "a@example.org"}).status_code == 400
    assert dispatch.names() == []


@pytest.mark.parametrize("path", ["/confirm/garbage", "/preferences/garbage", "/unsubscribe/garbage",
                                  "/change-email/garbage"])
def test_broken_links_offer_a_new_one(client, path):
    r = client.get(path)
    assert 400 <= r.status_code < 500
    assert 'href="/link"' in r.get_data(as_text=True)


def test_confirmed_reader_resubmitting_the_form_gets_a_link_email(client, session, dispatch):
    factories.reader(session, "known@example.org")
    token = csrf_from(client.get("/subscribe").get_data(as_text=True))
    r = client.post("/subscribe", data={"email": "known@example.org", "csrf_token": token})
    assert r.status_code == 200 and "Check your inbox" in r.get_data(as_text=True)
    assert dispatch.names() == ["mailer.send_reader_link"]


def test_erased_reader_can_opt_in_again_from_the_form_but_not_the_api(client, api, session, dispatch):
    reader = factories.reader(session, "erased@example.org")
    erase_reader(session, reader.id)
    assert api.post("/api/v1/subscribers", json={"email": "erased@example.org"}).status_code < 300
    assert session.scalar(select(Reader)) is None  # the API answers alike but adds nobody
    token = csrf_from(client.get("/subscribe").get_data(as_text=True))
    client.post("/subscribe", data={"email": "erased@example.org", "csrf_token": token})
    assert session.scalar(select(Reader.status)) == ReaderStatus.PENDING
    assert dispatch.names() == ["mailer.send_confirmations"]


def test_unsubscribe_page_offers_weekly_and_pause_before_leaving(client, session, rt):
    reader = factories.reader(session, "stay@example.org")
    url = unsub_url(rt, reader)
    page = client.get(url).get_data(as_text=True)
    assert "Switch to weekly" in page and "Pause for 30 days" in page and 'name="reason"' in page
    assert 'maxlength="500"' in page
    token = csrf_from(page)
    r = client.post(f"{url}/keep", data={"choice": "pause", "csrf_token": token})
    assert r.status_code == 200 and "Your digest is paused" in r.get_data(as_text=True)
    session.expire_all()
    row = session.get(Reader, reader.id)
    assert row.status == ReaderStatus.CONFIRMED and row.frequency == Frequency.PAUSED
    r = client.post(f"{url}/keep", data={"choice": "weekly", "csrf_token": token})
    assert "weekly digest" in r.get_data(as_text=True)
    assert client.post(f"{url}/keep", data={"choice": "forever", "csrf_token": token}).status_code == 400
    assert client.post(f"{url}/keep", data={"choice": "pause"}).status_code == 400  # CSRF
    assert client.post("/unsubscribe/garbage/keep", data={"choice": "pause",
                                                          "csrf_token": token}).status_code == 404


def test_unsubscribe_with_a_reason_and_a_way_back(client, session, rt):
    reader = factories.reader(session, "leave@example.org")
    r = client.post(unsub_url(rt, reader), data={"reason": "too-many", "comment": "Too much " * 200})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "You are unsubscribed" in html and "Subscribe again" in html
    event = session.scalar(select(ReaderEvent).where(ReaderEvent.kind == "unsubscribed"))
    assert event.detail["reason"] == "too-many" and len(event.detail["comment"]) <= 500
    # A kept reader can no longer be "kept" once gone.
    page = client.get(unsub_url(rt, reader)).get_data(as_text=True)
    assert "Switch to weekly" not in page


def test_one_click_unsubscribe_is_unchanged(client, session, rt):
    reader = factories.reader(session, "oneclick@example.org")
    r = client.post(unsub_url(rt, reader), data="List-Unsubscribe=One-Click",
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200
    session.expire_all()
    assert session.get(Reader, reader.id).status == ReaderStatus.UNSUBSCRIBED
    event = session.scalar(select(ReaderEvent).where(ReaderEvent.kind == "unsubscribed"))
    assert event.detail == {"source": "one-click"}


def test_snippet_is_styled_shows_topics_and_has_a_preview_page(client, session):
    factories.topic(session, "harbour", "Harbour")
    code = client.get("/subscribe/snippet").get_data(as_text=True)
    assert "<style>" in code and 'value="harbour"' in code and "Harbour" in code
    page = client.get("/subscribe/snippet/preview")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="copy-snippet"' in html
    assert "&lt;form" in html and 'class="newsletter-signup"' in html  # the code, and the live box


def test_embed_post_with_bad_input_never_500(client, session):
    for data in ({"email": ""}, {"email": "x" * 5000}, {"email": "a@example.org", "topics": "x" * 500},
                 {"email": "a@example.org", "frequency": "paused"}, {"email": "\x00@example.org"}):
        assert client.post("/subscribe/embed", data=data).status_code < 500


def test_archive_pages_are_growth_pages(client, session, rt, dispatch):
    edition = sent_edition(session, rt, title="Harbour reopens")
    index = client.get("/archive").get_data(as_text=True)
    assert 'id="subscribe-email"' in index and 'name="description"' in index
    page = client.get(f"/archive/{edition.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert re.search(r"<title>[^<]+</title>", html)
    assert 'property="og:title"' in html and 'property="og:description"' in html
    assert f'property="og:url" content="http://mailer.test/archive/{edition.id}"' in html
    assert "Harbour reopens" in html and 'action="/subscribe"' in html
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    email = client.get(f"/archive/{edition.id}/email")
    assert email.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert client.get("/archive/999999/email").status_code == 404
