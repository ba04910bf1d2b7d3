"""The console's "Send now" with an A/B subject test or an audience, and the
test's figures on the edition page."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from mailer import editions
from mailer.models import Edition, SubjectTest
from mailer.segments import save_segment
from tests.delivery.conftest import lane
from tests.support import factories


def _digest(session, readers=10):
    t = factories.topic(session)
    for _ in range(readers):
        factories.reader(session, topics=[t])
    factories.reader(session, "weekly@example.org", topics=[t], frequency="weekly")
    factories.article(session, topics=[t])
    return factories.digest(session, "Daily", topics=[t])


def test_send_now_with_a_subject_test_and_its_result_page(
        editor, session, rt, sender, settings_override):
    settings_override(tracking=True)
    digest = _digest(session)
    page = editor.get(f"/console/digests/{digest.id}/send").get_data(as_text=True)
    assert 'name="subject_1"' in page and 'name="sample_percent"' in page
    r = editor.post(f"/console/digests/{digest.id}/send", {
        "confirmed": "yes", "subject_1": "Morning tides", "subject_2": "Harbour news",
        "subject_3": "", "subject_4": "", "sample_percent": "20", "wait_minutes": "60",
        "metric": "opens"})
    assert r.status_code == 302, r.get_data(as_text=True)
    edition = session.scalar(select(Edition))
    test = session.get(SubjectTest, edition.id)
    assert test.subjects == ["Morning tides", "Harbour news"] and test.metric == "opens"

    editions.prepare_edition(session, rt.settings, edition.id)
    lane(session, rt, sender, edition.id)
    page = editor.get(f"/console/editions/{edition.id}").get_data(as_text=True)
    assert 'id="ab-test"' in page and "Morning tides" in page and "Harbour news" in page
    assert "9 readers wait for it" in page
    editions.decide_subject_tests(session, rt.settings, now=test.decide_at + timedelta(seconds=1))
    page = editor.get(f"/console/editions/{edition.id}").get_data(as_text=True)
    assert 'data-field="winner">Morning tides<' in page  # a tie (no opens): the first subject


def test_form_errors_create_nothing(editor, session, settings_override):
    digest = _digest(session)
    settings_override(tracking=False)
    page = editor.get(f"/console/digests/{digest.id}/send").get_data(as_text=True)
    assert "MAILER_TRACKING=1" in page and 'name="subject_1"' not in page
    r = editor.post(f"/console/digests/{digest.id}/send", {
        "confirmed": "yes", "subject_1": "A", "subject_2": "B"})
    assert r.headers["Location"].endswith(f"/console/digests/{digest.id}/send")
    settings_override(tracking=True)
    for form in ({"subject_1": "Only one"},
                 {"subject_1": "A", "subject_2": "B", "sample_percent": "80"},
                 {"subject_1": "A", "subject_2": "B", "wait_minutes": "soon"},
                 {"segment_id": "12345"}):
        r = editor.post(f"/console/digests/{digest.id}/send", {"confirmed": "yes", **form})
        assert r.status_code == 302
        assert f"/console/digests/{digest.id}/send" in r.headers["Location"]
    assert session.scalar(select(func.count()).select_from(Edition)) == 0
    shown = editor.get(f"/console/digests/{digest.id}/send").get_data(as_text=True)
    assert "No audience" in shown or "unknown audience" in shown


def test_send_now_to_an_audience(editor, session, rt, sender):
    digest = _digest(session)
    segment = save_segment(session, {"name": "Weekly", "match": "all", "rules": [
        {"field": "frequency", "op": "is", "value": "weekly"}]})
    page = editor.get(f"/console/digests/{digest.id}/send?segment_id={segment.id}").get_data(
        as_text=True)
    assert 'data-field="readers">1<' in page and f'name="segment_id" value="{segment.id}"' in page
    r = editor.post(f"/console/digests/{digest.id}/send",
                    {"confirmed": "yes", "segment_id": str(segment.id)})
    assert r.status_code == 302
    edition = session.scalar(select(Edition))
    assert edition.segment_id == segment.id
    editions.prepare_edition(session, rt.settings, edition.id)
    lane(session, rt, sender, edition.id)
    assert [m[1] for m in sender.messages] == ["weekly@example.org"]
