"""Report figures: net growth, clicks per article, unsubscribe reasons, tracking
off, and whole-number chart axes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mailer.common import ValidationError
from mailer.console import clicks_per_article, edition_stats, net_growth, unsubscribe_reasons
from mailer.models import EditionLink, Reader, ReaderEvent, utcnow
from mailer.readers import subscriptions
from mailer.web.console.charts import _scale, bar_chart, line_chart
from mailer.web.console.helpers import field_errors
from tests.console.world import build_world
from tests.support import factories


def test_net_growth_counts_gains_and_losses_per_day(session):
    now = utcnow()
    a = factories.reader(session, "a@example.org")
    b = factories.reader(session, "b@example.org")
    session.execute(update(Reader).values(confirmed_at=now))
    session.execute(update(Reader).where(Reader.id == b.id)
                    .values(confirmed_at=now - timedelta(days=2)))
    session.commit()
    subscriptions.unsubscribe_by_link(session, a.id, source="page", reason="too-many")
    days = net_growth(session, days=7, now=now)
    assert len(days) == 7 and days[-1].day == now.date()
    assert (days[-1].gained, days[-1].lost, days[-1].net) == (1, 1, 0)
    assert (days[-3].gained, days[-3].lost, days[-3].net) == (1, 0, 1)
    assert sum(d.net for d in days) == 1


def test_unsubscribe_reasons_are_counted_with_their_comments(session):
    readers = [factories.reader(session, f"r{n}@example.org") for n in range(4)]
    subscriptions.unsubscribe_by_link(session, readers[0].id, source="page", reason="too-many")
    subscriptions.unsubscribe_by_link(session, readers[1].id, source="page", reason="too-many",
                                      comment="Daily is a lot")
    subscriptions.unsubscribe_by_link(session, readers[2].id, source="page", reason="not-relevant")
    subscriptions.unsubscribe_by_link(session, readers[3].id, source="one-click")
    report = unsubscribe_reasons(session, days=7)
    assert report["counts"] == {"too-many": 2, "none": 1, "not-relevant": 1}
    assert report["total"] == 4
    assert [c["comment"] for c in report["comments"]] == ["Daily is a lot"]


def test_clicks_per_article_and_tracking_flag(session, rt, sender):
    world = build_world(session, rt)
    link = session.scalar(select(EditionLink).where(EditionLink.article_id == world.article_id))
    for _ in range(3):
        session.add(ReaderEvent(reader_id=world.reader_id, edition_id=world.edition_id,
                                kind="click", detail={"link": link.id}))
    session.commit()
    top = clicks_per_article(session, days=7)
    assert top[0]["article_id"] == world.article_id and (top[0]["clicks"], top[0]["readers"]) == (3, 1)
    stats = edition_stats(session, [world.edition_id])[0]
    assert stats.tracked and stats.open_label == "50.0%"


def test_untracked_editions_say_tracking_off(session, rt, sender):
    world = build_world(session, rt, tracking=False)
    stats = edition_stats(session, [world.edition_id])[0]
    assert not stats.tracked
    assert stats.open_label == stats.click_label == "tracking off"
    assert stats.unsubscribe_label == "0.0%"


@pytest.mark.parametrize(("peak", "top", "steps"), [(0, 1, 1), (1, 1, 1), (2, 2, 2), (3, 5, 5),
                                                    (7, 10, 5), (23, 25, 5), (180, 200, 5)])
def test_count_axes_have_whole_number_ticks(peak, top, steps):
    assert _scale(peak, integer=True) == (top, steps)
    assert (top / steps) == int(top / steps)


def test_chart_labels_are_whole_numbers_for_counts():
    svg = str(line_chart("t", ["a", "b"], {"readers": [0, 1]}))
    assert ">0.2<" not in svg and ">0.5<" not in svg and ">1<" in svg
    bars = str(bar_chart("t", [("d", {"gained": 3, "lost": 1})]))
    assert ">0.5<" not in bars and ">1.2<" not in bars


def test_field_errors_speak_plainly():
    one = ValidationError("Unknown time zone 'Mars'.", {"timezone": "unknown"})
    assert field_errors(one, {"timezone": "Time zone"}) == {"timezone": "Unknown time zone 'Mars'."}
    named = ValidationError("max_articles must be between 1 and 50.", {"max_articles": "out of range"})
    assert field_errors(named, {"max_articles": "Maximum articles"}) == {
        "max_articles": "Maximum articles must be between 1 and 50."}
    many = ValidationError("Bad.", {"title": "required", "image_url": "not an http(s) URL"})
    assert field_errors(many, {"title": "Title", "image_url": "Image URL"}) == {
        "title": "Title is required.", "image_url": "Image URL must start with http:// or https://."}
