"""The public archive of sent editions and its Atom feed."""

from __future__ import annotations

import io

import feedparser
from sqlalchemy import update

from mailer import editions
from mailer.models import Edition
from tests.support import factories


def sent_edition(session, rt, title="Ferry timetable changes", name="Daily"):
    t = factories.topic(session)
    factories.reader(session, topics=[t])
    factories.article(session, topics=[t], title=title)
    d = factories.digest(session, name, topics=[t])
    edition = editions.start_edition(session, d.name)
    editions.prepare_edition(session, rt.settings, edition.id)
    session.execute(update(Edition).where(Edition.id == edition.id).values(status="done"))
    session.commit()
    return edition


def test_archive_lists_sent_editions_with_web_versions(session, rt, client, dispatch):
    sent = sent_edition(session, rt, title="Harbour <script>alert(1)</script> news")
    draft = sent_edition(session, rt, name="Drafty")
    session.execute(update(Edition).where(Edition.id == draft.id).values(status="draft"))
    session.commit()

    page = client.get("/archive")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"/archive/{sent.id}" in html and f"/archive/{draft.id}" not in html
    assert "<script>alert" not in html and "/archive.atom" in html

    web = client.get(f"/archive/{sent.id}/email")
    assert web.status_code == 200 and web.mimetype == "text/html"
    body = web.get_data(as_text=True)
    assert "Harbour &lt;script&gt;" in body and "%%" not in body
    assert "default-src 'none'" in web.headers["Content-Security-Policy"]
    page = client.get(f"/archive/{sent.id}")  # the edition's own page frames it
    assert page.status_code == 200 and f'src="/archive/{sent.id}/email"' in page.get_data(as_text=True)
    assert client.get(f"/archive/{draft.id}").status_code == 404
    assert client.get("/archive/999999").status_code == 404
    assert client.get("/archive?page=abc").status_code == 200


def test_archive_atom_feed(session, rt, client, dispatch):
    first = sent_edition(session, rt, title="First story", name="Morning")
    second = sent_edition(session, rt, title="Second & last story", name="Evening")
    r = client.get("/archive.atom")
    assert r.status_code == 200 and r.mimetype == "application/atom+xml"
    parsed = feedparser.parse(io.BytesIO(r.data))
    assert not parsed.bozo and parsed.version == "atom10"
    links = [e.link for e in parsed.entries]
    assert links == [f"http://mailer.test/archive/{second.id}", f"http://mailer.test/archive/{first.id}"]
    assert "Second & last story" in parsed.entries[0].summary
    assert parsed.entries[0].title.startswith("Evening")
