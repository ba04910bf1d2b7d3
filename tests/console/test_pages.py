"""Each console page's main flow through the Flask test client."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from mailer import editions
from mailer.console.settings_checks import check_dkim, check_smtp
from mailer.models import Article, Digest, Edition, ReaderEvent
from mailer.web.console.charts import bar_chart, line_chart
from tests.console.world import build_world
from tests.support import factories
from tests.support.smtp import SmtpServer, free_port


@pytest.fixture
def world(session, rt, sender):  # type: ignore[no-untyped-def]
    return build_world(session, rt)


def test_dashboard_and_reports_draw_charts(viewer, world):
    page = viewer.get("/console/").get_data(as_text=True)
    assert page.count("<svg") == 2 and "Reader growth" in page and f"#{world.edition_id}" in page
    assert "50.0%" in page  # one open of two sends
    page = viewer.get("/console/reports?days=7").get_data(as_text=True)
    assert page.count("<svg") == 5 and "Per edition" in page and "Why readers left" in page
    assert viewer.get("/console/reports?days=nonsense").status_code == 200


def test_articles_search_edit_delete(editor, world, session):
    page = editor.get("/console/articles?q=ferry").get_data(as_text=True)
    assert "Harbour ferry timetable" in page and "Town council" not in page
    assert "No articles" in editor.get("/console/articles?q=%25_nothing").get_data(as_text=True)
    r = editor.post(f"/console/articles/{world.article_id}",
                    {"title": "Ferry timetable, revised", "summary": "New times.",
                     "body_html": "<p>ok</p><script>alert(1)</script>", "topics": ["local"]})
    assert r.status_code == 302
    session.expire_all()
    article = session.get(Article, world.article_id)
    assert article.title == "Ferry timetable, revised" and "<script>" not in article.body_html
    assert editor.post(f"/console/articles/{world.article_id}", {"title": ""}).status_code == 422
    assert editor.post(f"/console/articles/{world.article_id}/delete").status_code == 302
    session.expire_all()
    assert session.get(Article, world.article_id) is None
    assert editor.get(f"/console/articles/{world.article_id}").status_code == 404


def test_feeds_show_last_status_and_error(viewer, session):
    from mailer.models import Feed

    session.add(Feed(url="https://news.example.org/feed.xml", title="Main feed", last_status="error",
                     last_error="HTTP 500 from server"))
    session.commit()
    page = viewer.get("/console/feeds").get_data(as_text=True)
    assert "Main feed" in page and "HTTP 500 from server" in page and "error" in page


def test_digest_create_edit_and_bad_input(editor, session):
    factories.topic(session, "sport", "Sport")
    r = editor.post("/console/digests/new", {"name": "Weekly", "topics": ["sport"],
                                             "schedule": "mon 08:00", "timezone": "Europe/Berlin",
                                             "max_articles": "7", "approval": "draft"})
    assert r.status_code == 302
    digest = session.scalar(select(Digest).where(Digest.name == "Weekly"))
    assert (digest.max_articles, digest.approval, digest.timezone) == (7, "draft", "Europe/Berlin")
    assert digest.next_run_at is not None and [t.slug for t in digest.topics] == ["sport"]
    for bad in ({"name": ""}, {"name": "X", "schedule": "whenever"}, {"name": "X", "max_articles": "500"},
                {"name": "X", "schedule": "daily 07:00", "timezone": "Mars/Olympus"}, {"name": "X", "topics": ["nope"]}):
        r = editor.post(f"/console/digests/{digest.id}", bad)
        assert 400 <= r.status_code < 500, bad
    session.expire_all()
    assert session.get(Digest, digest.id).name == "Weekly"


def test_preview_test_send_and_send_now(editor, session, rt, sender):
    topic = factories.topic(session, "local", "Local")
    factories.article(session, topics=[topic], title="Lighthouse reopens")
    digest = factories.digest(session, "Daily", topics=[topic])
    factories.reader(session, "reader@example.org", topics=[topic])
    page = editor.get(f"/console/digests/{digest.id}/preview").get_data(as_text=True)
    assert page.count("<iframe") == 3 and "sandbox" in page and "1 article(s)" in page
    r = editor.get(f"/console/digests/{digest.id}/preview.html")
    assert "Lighthouse reopens" in r.get_data(as_text=True)
    assert "sandbox" in r.headers["Content-Security-Policy"] and r.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "Lighthouse reopens" in editor.get(f"/console/digests/{digest.id}/preview.txt").get_data(as_text=True)
    framed = editor.get(f"/console/digests/{digest.id}/preview-text.html")
    assert "<pre" in framed.get_data(as_text=True) and "sandbox" in framed.headers["Content-Security-Policy"]
    r = editor.post(f"/console/digests/{digest.id}/test-send", {"addresses": "me@example.org, you@example.org"},
                    follow_redirects=True)
    assert "Test sent: 2 of 2" in r.get_data(as_text=True)
    assert [rcpt for _, rcpt, _ in sender.messages] == ["me@example.org", "you@example.org"]
    assert b"Subject: [Test]" in sender.messages[0][2]
    assert editor.post(f"/console/digests/{digest.id}/test-send", {"addresses": "not an address"},
                       follow_redirects=True).status_code == 200
    assert len(sender.messages) == 2
    r = editor.post(f"/console/digests/{digest.id}/send")  # not confirmed: asks first
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/digests/{digest.id}/send")
    assert session.scalar(select(Edition)) is None
    r = editor.post(f"/console/digests/{digest.id}/send", {"confirmed": "yes"})
    edition = session.scalar(select(Edition))
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/console/editions/{edition.id}")
    assert edition.created_by == "editor@news.example.org"


def test_send_now_without_readers_is_a_clear_message(editor, session):
    digest = factories.digest(session, "Empty")
    r = editor.post(f"/console/digests/{digest.id}/send", {"confirmed": "yes"},
                    follow_redirects=True)
    assert "no confirmed readers" in r.get_data(as_text=True)
    assert session.scalar(select(Edition)) is None


def test_edition_progress_and_controls(editor, session, rt, dispatch):
    topic = factories.topic(session)
    factories.article(session, topics=[topic])
    digest = factories.digest(session, topics=[topic])
    for n in range(3):
        factories.reader(session, f"r{n}@example.org", topics=[topic])
    edition = editions.start_edition(session, digest.id)
    editions.prepare_edition(session, rt.settings, edition.id)
    p = editor.get(f"/console/editions/{edition.id}/progress.json").json
    assert (p["status"], p["planned"], p["sent"], p["remaining"], p["percent"], p["final"]) == (
        "sending", 3, 0, 3, 0.0, False)
    for key in ("failed", "unknown", "rate", "eta_seconds"):
        assert key in p
    page = editor.get(f"/console/editions/{edition.id}").get_data(as_text=True)
    assert 'id="progress"' in page and "console-progress.js" in page and "Pause" in page
    assert editor.post(f"/console/editions/{edition.id}/pause").status_code == 302
    assert editor.get(f"/console/editions/{edition.id}/progress.json").json["status"] == "paused"
    editor.post(f"/console/editions/{edition.id}/resume")
    assert editor.get(f"/console/editions/{edition.id}/progress.json").json["status"] == "sending"
    r = editor.post(f"/console/editions/{edition.id}/resume", follow_redirects=True)
    assert "only a paused edition resumes" in r.get_data(as_text=True)
    editor.post(f"/console/editions/{edition.id}/cancel")
    p = editor.get(f"/console/editions/{edition.id}/progress.json").json
    assert p["status"] == "cancelled" and p["final"] is True
    assert editor.get("/console/editions/999999/progress.json").status_code == 404


def test_approve_a_draft(editor, session, dispatch):
    topic = factories.topic(session)
    factories.article(session, topics=[topic])
    digest = factories.digest(session, topics=[topic], approval="draft")
    factories.reader(session, topics=[topic])
    edition = editions.start_edition(session, digest.id, slot="2026-11-25T07:00Z")
    assert edition.status == "draft"
    assert f"#{edition.id}" in editor.get("/console/digests").get_data(as_text=True)
    editor.post(f"/console/editions/{edition.id}/approve")
    session.expire_all()
    assert session.get(Edition, edition.id).status == "compiling"
    assert "mailer.prepare_edition" in dispatch.names()


def test_reader_search_filters_and_history(viewer, world, session):
    factories.reader(session, "adam@example.org", status="pending")
    page = viewer.get("/console/readers?q=AD").get_data(as_text=True)
    assert "ada@example.org" in page and "adam@example.org" in page and "bob@" not in page
    page = viewer.get("/console/readers?q=ad&status=pending").get_data(as_text=True)
    assert "adam@example.org" in page and "ada@example.org" not in page
    page = viewer.get("/console/readers?topic=local").get_data(as_text=True)
    assert "ada@example.org" in page and "adam@" not in page
    assert "ada@example.org" in viewer.get(f"/console/readers?q={world.reader_id}").get_data(as_text=True)
    assert "No readers" in viewer.get("/console/readers?q=%25%25").get_data(as_text=True)
    session.add(ReaderEvent(reader_id=world.reader_id, kind="preferences", detail={"frequency": "daily"}))
    session.commit()
    page = viewer.get(f"/console/readers/{world.reader_id}").get_data(as_text=True)
    assert "sent" in page and "open" in page and "preferences" in page and "frequency=daily" in page
    assert f"Edition #{world.edition_id}" in page
    assert viewer.get("/console/readers/999999").status_code == 404


def test_outbox_lists_and_shows_messages_escaped(viewer, world):
    page = viewer.get("/console/outbox").get_data(as_text=True)
    assert world.outbox_name in page and "<b>there</b>" not in page and "&lt;b&gt;there" in page
    page = viewer.get(f"/console/outbox/{world.outbox_name}").get_data(as_text=True)
    assert "<script>" not in page and "&lt;script&gt;" in page
    for bad in ("../secret_key", "..%2Fsecret_key", "x.txt", ".hidden.eml", "nope.eml"):
        assert viewer.get(f"/console/outbox/{bad}").status_code == 404, bad


def test_settings_page_and_smtp_check(editor, rt):
    page = editor.get("/console/settings").get_data(as_text=True)
    assert "MAILER_SEND_RATE" in page and "MAILER_DOMAIN_RATES" in page
    r = editor.post("/console/settings/smtp-check")
    assert "outbox" in r.get_data(as_text=True)
    with SmtpServer() as smtp:
        assert check_smtp(smtp.url).ok
    result = check_smtp(f"smtp://127.0.0.1:{free_port()}", timeout=2)
    assert not result.ok and "127.0.0.1" in result.message
    assert not check_smtp("http://wrong").ok


def test_smtp_check_from_the_page(editor, rt):
    with SmtpServer() as smtp:
        rt_settings = rt.settings
        rt.settings = dataclasses.replace(rt_settings, smtp_url=smtp.url + "?user=x")
        try:
            page = editor.post("/console/settings/smtp-check").get_data(as_text=True)
        finally:
            rt.settings = rt_settings
    assert 'data-check="smtp"' in page and "answered EHLO" in page


def _rsa_key(path) -> str:  # type: ignore[no-untyped-def]
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    import base64

    return base64.b64encode(der).decode()


def test_dkim_check_matches_pasted_record(tmp_path):
    key, other = tmp_path / "k.pem", tmp_path / "o.pem"
    public, other_public = _rsa_key(key), _rsa_key(other)
    record = f"v=DKIM1; k=rsa; p={public}"
    assert check_dkim(str(key), "news", "example.org", record).ok
    # As DNS tools print it: name, class, quoted chunks.
    chunks = " ".join(f'"{record[i:i + 200]}"' for i in range(0, len(record), 200))
    assert check_dkim(str(key), "news", "example.org", f"news._domainkey.example.org. IN TXT ( {chunks} )").ok
    wrong = check_dkim(str(key), "news", "example.org", f"v=DKIM1; k=rsa; p={other_public}")
    assert not wrong.ok and "does not match" in wrong.message
    assert not check_dkim(str(key), "news", "example.org", "garbage").ok
    assert not check_dkim("", "", "example.org", record).ok


def test_charts_are_valid_svg_with_escaped_labels():
    svg = line_chart("Growth <script>", ["1 Nov", "<b>2</b>"], {"readers": [3, 5]})
    root = ET.fromstring(str(svg))
    assert root.tag.endswith("svg") and "<script>" not in str(svg)
    svg = bar_chart("Per edition", [("#1 <i>", {"opens": 10.5, "clicks": 2}), ("#2", {"opens": 0})])
    ET.fromstring(str(svg))
    assert len(re.findall("<rect", str(svg))) >= 4
    ET.fromstring(str(line_chart("empty", [], {})))


def test_finished_editions_keep_their_counts(session, world, rt):
    from mailer.console import stats
    from mailer.models import EditionFigures

    assert session.get(EditionFigures, world.edition_id) is None
    figures = stats.edition_stats(session, [world.edition_id])[0]
    kept = session.get(EditionFigures, world.edition_id)
    assert (kept.sent, kept.planned, figures.sent) == (2, 2, 2)
    # An edition still sending is counted live, never kept.
    topic = factories.topic(session)
    factories.article(session, topics=[topic])
    digest = factories.digest(session, topics=[topic])
    factories.reader(session, topics=[topic])
    edition = editions.start_edition(session, digest.id)
    editions.prepare_edition(session, rt.settings, edition.id)
    assert stats.edition_stats(session, [edition.id])[0].planned == 1
    assert session.get(EditionFigures, edition.id) is None


def test_retry_failed_and_unknown_from_the_edition_page(editor, viewer, session, rt, dispatch):
    from mailer.models import Delivery, DeliveryStatus, EditionStatus

    topic = factories.topic(session)
    factories.article(session, topics=[topic])
    digest = factories.digest(session, topics=[topic])
    for name in ("a", "b", "c"):
        factories.reader(session, f"{name}@example.org", topics=[topic])
    edition = editions.start_edition(session, digest.id)
    editions.prepare_edition(session, rt.settings, edition.id)
    rows = list(session.scalars(select(Delivery).order_by(Delivery.id)))
    rows[0].status, rows[0].smtp_code, rows[0].error = DeliveryStatus.FAILED, 550, "550 5.1.1 unknown user"
    rows[1].status, rows[1].error = DeliveryStatus.UNKNOWN, "connection lost after DATA"
    rows[2].status, rows[2].smtp_code = DeliveryStatus.SENT, 250
    session.get(Edition, edition.id).status = EditionStatus.DONE
    session.commit()

    page = editor.get(f"/console/editions/{edition.id}").get_data(as_text=True)
    assert "Retry failed" in page and "Retry unknown" in page
    assert "550 5.1.1 unknown user" in page and "connection lost after DATA" in page
    viewer_page = viewer.get(f"/console/editions/{edition.id}").get_data(as_text=True)
    assert "550 5.1.1 unknown user" in viewer_page
    assert viewer.post(f"/console/editions/{edition.id}/retry-failed").status_code == 403
    assert editor.post(f"/console/editions/{edition.id}/retry-failed", csrf=False).status_code == 400
    assert editor.post(f"/console/editions/{edition.id}/retry-sent").status_code == 404

    r = editor.post(f"/console/editions/{edition.id}/retry-failed", follow_redirects=True)
    assert "1 failed recipient(s) will be sent again" in r.get_data(as_text=True)
    session.expire_all()
    assert [d.status for d in session.scalars(select(Delivery).order_by(Delivery.id))] == [
        "pending", "unknown", "sent"]  # the unknown row waits for its own, deliberate click
    assert session.get(Edition, edition.id).status == "sending"
    editor.post(f"/console/editions/{edition.id}/retry-unknown")
    session.expire_all()
    assert [d.status for d in session.scalars(select(Delivery).order_by(Delivery.id))] == [
        "pending", "pending", "sent"]
