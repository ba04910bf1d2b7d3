"""The ledger around sending, with an in-memory sender (real SMTP: tests/e2e)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from mailer import delivery, editions
from mailer.common.errors import Conflict
from mailer.mail.senders import Outcome, Result
from mailer.models import (
    Delivery,
    Edition,
    EditionStatus,
    Reader,
    ReaderStatus,
    utcnow,
)
from mailer.readers import subscriptions
from tests.delivery.conftest import lane, planned_edition
from tests.support import factories


def statuses(session, edition_id):
    return editions.status_counts(session, edition_id)


def test_start_refuses_without_readers_or_articles_and_creates_nothing(session, dispatch):
    t = factories.topic(session)
    d = factories.digest(session, topics=[t])
    with pytest.raises(Conflict, match="no confirmed readers"):
        editions.start_edition(session, d.name)
    factories.reader(session, topics=[t])
    with pytest.raises(Conflict, match="no new articles"):
        editions.start_edition(session, d.name)
    assert session.scalar(select(func.count()).select_from(Edition)) == 0
    assert dispatch.sent == []


def test_prepare_plans_one_row_per_eligible_reader_in_one_statement(session, rt, dispatch):
    t, other = factories.topic(session), factories.topic(session)
    for _ in range(3):
        factories.reader(session, topics=[t])
    factories.reader(session, topics=[])  # wants everything
    factories.reader(session, topics=[other])  # not interested
    factories.reader(session, status=ReaderStatus.PENDING, topics=[t])
    factories.reader(session, topics=[t], frequency="paused")
    factories.article(session, topics=[t])
    d = factories.digest(session, topics=[t])
    edition = editions.start_edition(session, d.name)
    assert dispatch.names() == ["mailer.prepare_edition"]

    inserts = []
    engine = session.get_bind()

    def count(conn, cursor, statement, *args):  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO DELIVERIES"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert editions.prepare_edition(session, rt.settings, edition.id) == 4
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(inserts) == 1
    session.refresh(edition)
    assert edition.status == EditionStatus.SENDING
    assert dispatch.names().count("mailer.send_lane") == rt.settings.send_lanes


def test_lane_sends_each_reader_once_and_finishes(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=7)
    report = lane(session, rt, sender, edition.id)
    assert report.sent == 7
    assert statuses(session, edition.id) == {"sent": 7}
    session.refresh(edition)
    assert edition.status == EditionStatus.DONE
    assert len({m[1] for m in sender.messages}) == 7
    # A second lane finds nothing to do and sends nothing.
    lane(session, rt, sender, edition.id)
    assert len(sender.messages) == 7


def test_lane_query_count_does_not_grow_per_recipient(session, rt, sender, dispatch):
    """Pins the bulk path: one claim, one reader load, one ledger write per message."""
    edition = planned_edition(session, rt, readers=40)
    statements = []
    engine = session.get_bind()
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        lane(session, rt, sender, edition.id)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    selects_of_readers = [s for s in statements if "FROM readers" in s]
    assert len(selects_of_readers) == 1
    ledger_writes = [s for s in statements if s.startswith("UPDATE deliveries")]
    assert len(ledger_writes) <= 40 + 8  # + claims (retry and pending), flush, release


def test_reader_who_left_after_planning_is_skipped(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=3)
    leaver = session.scalars(select(Reader)).first()
    subscriptions.unsubscribe(session, leaver.id, source="test")
    lane(session, rt, sender, edition.id)
    assert statuses(session, edition.id) == {"sent": 2, "skipped": 1}
    assert leaver.email not in {m[1] for m in sender.messages}


def test_temporary_failure_is_retried_later_then_sent(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=2)
    flaky = session.scalars(select(Reader).order_by(Reader.id)).first()
    sender.script[flaky.email] = Outcome(Result.TEMPORARY, 451, "try later", "envelope")
    lane(session, rt, sender, edition.id)
    assert statuses(session, edition.id) == {"sent": 1, "retry": 1}
    row = session.scalar(select(Delivery).where(Delivery.reader_id == flaky.id))
    assert row.attempts == 1 and row.next_attempt_at > utcnow()
    # not due yet: nothing happens
    lane(session, rt, sender, edition.id)
    assert statuses(session, edition.id) == {"sent": 1, "retry": 1}
    del sender.script[flaky.email]
    session.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    lane(session, rt, sender, edition.id)
    assert statuses(session, edition.id) == {"sent": 2}
    assert [m[1] for m in sender.messages].count(flaky.email) == 1


def test_permanent_failure_fails_and_suppresses_without_retry(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=2)
    bad = session.scalars(select(Reader).order_by(Reader.id)).first()
    sender.script[bad.email] = Outcome(Result.PERMANENT, 550, "no such user", "envelope")
    lane(session, rt, sender, edition.id)
    assert statuses(session, edition.id) == {"sent": 1, "failed": 1}
    session.refresh(bad)
    assert bad.status == ReaderStatus.BOUNCED
    assert subscriptions.is_suppressed(session, bad.email)


def test_unknown_outcome_is_never_resent(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=2)
    cut = session.scalars(select(Reader).order_by(Reader.id)).first()
    sender.script[cut.email] = Outcome(Result.UNKNOWN, 0, "connection lost during DATA")
    lane(session, rt, sender, edition.id)
    del sender.script[cut.email]
    lane(session, rt, sender, edition.id)
    delivery.sweep(session, rt.settings)
    assert statuses(session, edition.id) == {"sent": 1, "unknown": 1}


def test_sweeper_turns_stale_sending_into_unknown_and_claimed_into_pending(
        session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=3)
    ids = [d.id for d in session.scalars(select(Delivery).order_by(Delivery.id))]
    old = utcnow() - timedelta(hours=1)
    session.execute(update(Delivery).where(Delivery.id == ids[0])
                    .values(status="sending", claimed_by="dead", claimed_at=old))
    session.execute(update(Delivery).where(Delivery.id.in_(ids[1:]))
                    .values(status="claimed", claimed_by="dead", claimed_at=old))
    session.commit()
    report = delivery.sweep(session, rt.settings)
    assert report.unknown == 1 and report.released == 2
    assert edition.id in report.woken
    lane(session, rt, sender, edition.id)
    assert statuses(session, edition.id) == {"unknown": 1, "sent": 2}


def test_pause_stops_lanes_resume_finishes(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=4)
    editions.pause_edition(session, edition.id)
    lane(session, rt, sender, edition.id)
    assert sender.messages == []
    editions.resume_edition(session, rt.settings, edition.id)
    lane(session, rt, sender, edition.id)
    assert statuses(session, edition.id) == {"sent": 4}


def test_cancel_marks_the_rest_cancelled(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=4)
    editions.cancel_edition(session, edition.id)
    lane(session, rt, sender, edition.id)
    assert statuses(session, edition.id) == {"cancelled": 4}
    with pytest.raises(Conflict):
        editions.resume_edition(session, rt.settings, edition.id)


def test_progress_reports_counters(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=3)
    lane(session, rt, sender, edition.id)
    p = editions.progress(session, edition.id)
    assert (p["planned"], p["sent"], p["remaining"], p["status"]) == (3, 3, 0, "done")


def test_next_edition_skips_articles_already_sent(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=1)
    lane(session, rt, sender, edition.id)
    with pytest.raises(Conflict, match="no new articles"):
        editions.start_edition(session, edition.digest_id)


def test_a_451_slows_that_domain_down(session, rt, sender, dispatch):
    from mailer.delivery.ratelimit import LocalRateLimiter

    edition = planned_edition(session, rt, readers=3)
    first = session.scalar(select(Reader.email).order_by(Reader.id))
    sender.script[first] = Outcome(Result.TEMPORARY, 451, "slow down", "envelope")
    limiter = LocalRateLimiter(0, {}, sleep=lambda s: None)
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, None), limiter=limiter)
    assert limiter.slow.factor(first.rpartition("@")[2]) == 2
    assert statuses(session, edition.id) == {"sent": 2, "retry": 1}


def test_a_capped_domain_defers_rows_instead_of_blocking_the_lane(session, rt, sender, dispatch):
    from mailer.delivery.ratelimit import LocalRateLimiter

    edition = planned_edition(session, rt, readers=3)
    domain = session.scalar(select(Reader.email)).rpartition("@")[2]
    limiter = LocalRateLimiter(0, {domain: 0.01}, sleep=lambda s: None)  # one per 100 s
    report = delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender,
                               tokens=rt.tokens, skeletons=delivery.SkeletonCache(rt.settings, None),
                               limiter=limiter, budget_seconds=0.5)
    assert report.sent == 1 and report.deferred == 2
    assert statuses(session, edition.id) == {"sent": 1, "retry": 2}
    deferred = session.scalars(select(Delivery).where(Delivery.status == "retry")).all()
    assert all(d.attempts == 0 and d.claimed_by == "" for d in deferred)
    assert all(d.next_attempt_at > utcnow() + timedelta(seconds=90) for d in deferred)
