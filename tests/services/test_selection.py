"""Per-reader selection: topics, since-last-digest, no repeats, empty skip,
frequencies, shared compiles, set-based planning and the size guard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from mailer import editions
from mailer.common.errors import Conflict
from mailer.mail.rendering import HTML_BUDGET_BYTES
from mailer.models import Delivery, DeliveryStatus, Edition, EditionVariant, Reader, utcnow
from tests.support import factories


def run(session, rt, digest, now=None):
    """Start and plan an edition; return {reader email: article ids}."""
    edition = editions.start_edition(session, digest.name, now=now)
    editions.prepare_edition(session, rt.settings, edition.id)
    rows = session.execute(
        select(Reader.email, EditionVariant.article_ids)
        .join(Delivery, Delivery.reader_id == Reader.id)
        .join(EditionVariant, EditionVariant.id == Delivery.variant_id)
        .where(Delivery.edition_id == edition.id)
    ).all()
    return edition, {email: list(ids) for email, ids in rows}


def mark_sent(session, edition):
    session.execute(update(Delivery).where(Delivery.edition_id == edition.id)
                    .values(status=DeliveryStatus.SENT))
    session.commit()


def ago(**kw):
    return utcnow() - timedelta(**kw)


def test_each_reader_gets_only_their_topics_and_same_selections_share_a_compile(session, rt, dispatch):
    x, y, z = (factories.topic(session) for _ in range(3))
    for n in (1, 2):
        factories.reader(session, f"x{n}@example.org", topics=[x])
    factories.reader(session, "y@example.org", topics=[y])
    factories.reader(session, "all@example.org", topics=[])
    factories.reader(session, "z@example.org", topics=[z])  # outside the digest
    a_x = factories.article(session, topics=[x], published_at=ago(hours=3))
    a_y = factories.article(session, topics=[y], published_at=ago(hours=2))
    a_xy = factories.article(session, topics=[x, y], published_at=ago(hours=1))
    d = factories.digest(session, topics=[x, y])

    edition, got = run(session, rt, d)
    assert got == {
        "x1@example.org": [a_xy.id, a_x.id],
        "x2@example.org": [a_xy.id, a_x.id],
        "y@example.org": [a_xy.id, a_y.id],
        "all@example.org": [a_xy.id, a_y.id, a_x.id],
    }
    variants = session.scalars(select(EditionVariant).where(EditionVariant.edition_id == edition.id)).all()
    # three distinct selections -> three variants; the web version is the "all" one
    assert len(variants) == 3
    assert edition.planned == 4
    # delivery ids follow variants, so a lane's batch touches few of them
    by_id = session.scalars(select(Delivery.variant_id).where(Delivery.edition_id == edition.id)
                            .order_by(Delivery.id)).all()
    assert by_id == sorted(by_id)


def test_since_last_digest_and_never_twice(session, rt, dispatch):
    t = factories.topic(session)
    factories.reader(session, "r@example.org", topics=[t])
    first = factories.article(session, topics=[t], published_at=ago(hours=5))
    d = factories.digest(session, topics=[t])
    e1, got = run(session, rt, d, now=ago(hours=4))
    assert got == {"r@example.org": [first.id]}
    mark_sent(session, e1)

    second = factories.article(session, topics=[t], published_at=ago(hours=1))
    _e2, got = run(session, rt, d)
    assert got == {"r@example.org": [second.id]}


def test_no_repeats_across_digests(session, rt, dispatch):
    t = factories.topic(session)
    factories.reader(session, "r@example.org", topics=[t])
    shared = factories.article(session, topics=[t], published_at=ago(hours=2))
    morning = factories.digest(session, "Morning", topics=[t])
    evening = factories.digest(session, "Evening", topics=[t])
    e1, got = run(session, rt, morning)
    assert got == {"r@example.org": [shared.id]}
    mark_sent(session, e1)

    fresh = factories.article(session, topics=[t], published_at=ago(hours=1))
    _, got = run(session, rt, evening)
    assert got == {"r@example.org": [fresh.id]}


def test_reader_with_nothing_new_gets_no_row(session, rt, dispatch):
    x, y = factories.topic(session), factories.topic(session)
    factories.reader(session, "x@example.org", topics=[x])
    factories.reader(session, "y@example.org", topics=[y])
    factories.article(session, topics=[x], published_at=ago(hours=1))
    d = factories.digest(session, topics=[x, y])
    edition, got = run(session, rt, d)
    assert list(got) == ["x@example.org"]
    assert edition.planned == 1


def test_in_flight_deliveries_count_as_received(session, rt, dispatch):
    t = factories.topic(session)
    factories.reader(session, "r@example.org", topics=[t])
    factories.article(session, topics=[t], published_at=ago(hours=2))
    a = factories.digest(session, "A", topics=[t])
    b = factories.digest(session, "B", topics=[t])
    run(session, rt, a)  # still pending: not yet sent, but on its way
    with pytest.raises(Conflict):  # nobody is owed anything: no empty edition of B
        run(session, rt, b)
    assert session.scalar(select(Edition.id).where(Edition.digest_id == b.id)) is None


def test_daily_and_weekly_readers_get_at_most_one_digest_per_period(session, rt, dispatch):
    t = factories.topic(session)
    factories.reader(session, "now@example.org", topics=[t])
    factories.reader(session, "daily@example.org", topics=[t], frequency="daily")
    factories.reader(session, "weekly@example.org", topics=[t], frequency="weekly")
    factories.reader(session, "paused@example.org", topics=[t], frequency="paused")
    start = utcnow() - timedelta(days=7, hours=12)
    d = factories.digest(session, topics=[t], max_articles=3)

    def publish(at):
        return factories.article(session, topics=[t], published_at=at).id

    a1 = publish(start - timedelta(hours=1))
    e, got = run(session, rt, d, now=start)
    assert got == {k: [a1] for k in ("now@example.org", "daily@example.org", "weekly@example.org")}
    mark_sent(session, e)

    a2 = publish(start + timedelta(hours=1))
    e, got = run(session, rt, d, now=start + timedelta(hours=2))
    assert got == {"now@example.org": [a2]}  # daily and weekly wait
    mark_sent(session, e)

    a3 = publish(start + timedelta(hours=20))
    a4 = publish(start + timedelta(hours=23))
    e, got = run(session, rt, d, now=start + timedelta(days=1))
    # the daily reader gets everything since their last digest, newest first
    assert got == {"now@example.org": [a4, a3], "daily@example.org": [a4, a3, a2]}
    mark_sent(session, e)

    more = [publish(start + timedelta(days=6, hours=h)) for h in range(1, 6)]
    e, got = run(session, rt, d, now=start + timedelta(days=7))
    # capped at max_articles, the newest first
    assert got["weekly@example.org"] == list(reversed(more))[:3]
    assert got["daily@example.org"] == list(reversed(more))[:3]
    assert "paused@example.org" not in got


def test_planning_does_not_loop_over_readers(session, rt, dispatch):
    """The number of statements is the same for 3 and for 60 readers."""
    engine = session.get_bind()

    def statements_for(readers: int) -> int:
        t, u = factories.topic(session), factories.topic(session)
        d = factories.digest(session, topics=[t, u])
        session.execute(update(Reader).values(status="unsubscribed"))
        session.commit()
        for n in range(readers):
            factories.reader(session, topics=[[t], [u], []][n % 3])
        factories.article(session, topics=[t, u], published_at=ago(minutes=1))
        edition = editions.start_edition(session, d.name)
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            planned = editions.prepare_edition(session, rt.settings, edition.id)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert planned == readers
        return len(seen)

    assert statements_for(3) == statements_for(60)


def test_size_guard_caps_cards_and_records_truncation(session, rt, dispatch):
    t = factories.topic(session)
    factories.reader(session, topics=[t])
    for n in range(50):
        a = factories.article(session, topics=[t], published_at=ago(minutes=n + 1),
                              title=f"A long headline number {n} " + "word " * 30)
        a.summary = "A summary that goes on and on. " * 10
        a.image_url = f"https://img.example.org/{n}.jpg"
    session.commit()
    d = factories.digest(session, topics=[t], max_articles=50)
    edition, got = run(session, rt, d)
    variant = session.scalars(select(EditionVariant).where(EditionVariant.edition_id == edition.id)).one()
    assert variant.truncated > 0
    assert len(variant.article_ids) == 50 - variant.truncated
    assert len(variant.html.encode()) <= HTML_BUDGET_BYTES
    # cards left out are not counted as received: they can come next time
    assert next(iter(got.values())) == variant.article_ids


@pytest.mark.parametrize("status", [DeliveryStatus.FAILED, DeliveryStatus.SKIPPED])
def test_failed_or_skipped_deliveries_do_not_count_as_received(session, rt, dispatch, status):
    t = factories.topic(session)
    factories.reader(session, "r@example.org", topics=[t])
    a = factories.article(session, topics=[t], published_at=ago(hours=2))
    first, second = factories.digest(session, "One", topics=[t]), factories.digest(session, "Two", topics=[t])
    e1, _ = run(session, rt, first)
    session.execute(update(Delivery).where(Delivery.edition_id == e1.id).values(status=status))
    session.commit()
    _, got = run(session, rt, second)
    assert got == {"r@example.org": [a.id]}


def test_concurrent_prepare_plans_once(app, session, rt, dispatch):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter")
    import threading

    from sqlalchemy.orm import Session as PlainSession

    t = factories.topic(session)
    for _ in range(20):
        factories.reader(session, topics=[t])
    factories.article(session, topics=[t])
    d = factories.digest(session, topics=[t])
    edition_id = editions.start_edition(session, d.name).id
    barrier = threading.Barrier(3)
    results, errors = [], []
    engine = session.get_bind()

    def prepare():
        with app.app_context(), PlainSession(engine) as own:
            barrier.wait()
            try:
                results.append(editions.prepare_edition(own, rt.settings, edition_id))
            except Exception as exc:  # surfaced below
                errors.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors and sorted(results) == [0, 0, 20]


def test_templates_without_card_markers_compile_per_selection(session, rt, dispatch, monkeypatch):
    from mailer.mail import rendering

    def no_markers(self, name, context):
        raise rendering.TemplateError("template has no card markers")

    monkeypatch.setattr(rendering.CardDeck, "__init__", no_markers)
    x, y = factories.topic(session), factories.topic(session)
    factories.reader(session, "x@example.org", topics=[x])
    factories.reader(session, "y@example.org", topics=[y])
    a = factories.article(session, topics=[x], published_at=ago(hours=2))
    b = factories.article(session, topics=[y], published_at=ago(hours=1))
    d = factories.digest(session, topics=[x, y])
    edition, got = run(session, rt, d)
    assert got == {"x@example.org": [a.id], "y@example.org": [b.id]}
    htmls = session.scalars(select(EditionVariant.html).where(EditionVariant.edition_id == edition.id)).all()
    assert len(htmls) == 3 and all("<html" in h for h in htmls)


def test_a_quiet_day_still_brings_a_weekly_reader_what_came_out_in_their_week(session, rt, dispatch):
    """Nothing is new for the digest, but the weekly reader is due and owed the
    articles the immediate reader got during the week: an edition goes to them alone."""
    t = factories.topic(session)
    factories.reader(session, "now@example.org", topics=[t])
    factories.reader(session, "weekly@example.org", topics=[t], frequency="weekly")
    start = utcnow() - timedelta(days=7, hours=1)
    d = factories.digest(session, topics=[t])
    a1 = factories.article(session, topics=[t], published_at=start - timedelta(hours=1))
    e1, got = run(session, rt, d, now=start)
    assert got == {"now@example.org": [a1.id], "weekly@example.org": [a1.id]}
    mark_sent(session, e1)
    a2 = factories.article(session, topics=[t], published_at=start + timedelta(days=2))
    e2, got = run(session, rt, d, now=start + timedelta(days=2, hours=1))
    assert got == {"now@example.org": [a2.id]}  # the weekly reader is not due yet
    mark_sent(session, e2)

    # Day 7: no new article. Before the weekly reader is due, nobody is owed anything.
    with pytest.raises(Conflict, match="no new articles"):
        editions.start_edition(session, d.name, now=start + timedelta(days=6))
    e3, got = run(session, rt, d, now=start + timedelta(days=7))
    assert got == {"weekly@example.org": [a2.id]}
    assert e3.article_ids == [a2.id]  # what the archive shows for this edition
    mark_sent(session, e3)
    with pytest.raises(Conflict, match="no new articles"):
        editions.start_edition(session, d.name, now=start + timedelta(days=7, hours=1))
