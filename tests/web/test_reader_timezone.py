"""A reader's time zone: captured at signup from the browser (subscribe form,
archive box, embed), editable in the preference centre, empty = the newsletter's."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.common.tokens import Purpose
from mailer.models import Reader
from mailer.readers import reader_link_token
from tests.support import factories
from tests.web.conftest import csrf_from


def reader_zone(session, address: str) -> str:
    session.expire_all()
    return session.scalar(select(Reader.timezone).where(Reader.email_key == address))


def test_signup_form_carries_a_browser_filled_zone_field(client):
    page = client.get("/subscribe").get_data(as_text=True)
    assert 'name="timezone"' in page and "data-browser-zone" in page
    assert "/static/timezone.js" in page
    script = client.get("/static/timezone.js").get_data(as_text=True)
    assert "resolvedOptions().timeZone" in script


@pytest.mark.parametrize("sent, stored", [
    ("Asia/Kathmandu", "Asia/Kathmandu"),
    ("Asia/Calcutta", "Asia/Kolkata"),  # the old name some browsers report: stored current
    ("", ""),
    ("Mars/Olympus", ""),  # a zone this system does not know: the newsletter's, no error
    ("x" * 300, ""),
])
def test_subscribe_stores_the_browser_zone(client, session, sent, stored):
    token = csrf_from(client.get("/subscribe").get_data(as_text=True))
    r = client.post("/subscribe", data={"email": "tz@example.org", "csrf_token": token,
                                        "timezone": sent})
    assert r.status_code == 200 and "Check your inbox" in r.get_data(as_text=True)
    assert reader_zone(session, "tz@example.org") == stored


def test_embed_snippet_fills_and_posts_the_zone(client, session):
    snippet = client.get("/subscribe/snippet").get_data(as_text=True)
    assert 'name="timezone"' in snippet and "Intl.DateTimeFormat().resolvedOptions()" in snippet
    # The live preview runs under this site's script policy: no inline script there.
    preview = client.get("/subscribe/snippet/preview").get_data(as_text=True)
    assert "<script>try" not in preview and "/static/timezone.js" in preview
    r = client.post("/subscribe/embed", data={"email": "em@example.org",
                                              "timezone": "Pacific/Kiritimati"})
    assert r.status_code == 200
    assert reader_zone(session, "em@example.org") == "Pacific/Kiritimati"


def test_preference_centre_edits_the_zone(client, session, rt):
    reader = factories.reader(session, "pz@example.org")
    url = f"/preferences/{reader_link_token(rt.tokens, Purpose.PREFERENCES, reader)}"
    page = client.get(url).get_data(as_text=True)
    assert 'name="timezone"' in page and ">Same as the newsletter<" in page
    assert 'value="Asia/Kolkata"' in page
    r = client.post(url, data={"csrf_token": csrf_from(page), "action": "save",
                               "frequency": "daily", "timezone": "Asia/Kolkata"})
    assert r.status_code == 200 and "saved" in r.get_data(as_text=True)
    assert reader_zone(session, "pz@example.org") == "Asia/Kolkata"
    assert 'value="Asia/Kolkata" selected' in r.get_data(as_text=True)
    # A zone that does not exist: the field is named, nothing changes.
    r = client.post(url, data={"csrf_token": csrf_from(page), "action": "save",
                               "frequency": "weekly", "timezone": "Nowhere/Land"})
    assert r.status_code == 422 and "time zone" in r.get_data(as_text=True).lower()
    session.expire_all()
    assert session.scalar(select(Reader.frequency).where(Reader.id == reader.id)) == "daily"
    assert reader_zone(session, "pz@example.org") == "Asia/Kolkata"
    # Back to the newsletter's zone.
    client.post(url, data={"csrf_token": csrf_from(page), "action": "save",
                           "frequency": "daily", "timezone": ""})
    assert reader_zone(session, "pz@example.org") == ""
