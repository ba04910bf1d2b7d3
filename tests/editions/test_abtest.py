"""A/B subject tests: the sample/rest split at planning, held rows, the winner
chosen by the beat tick, and the rest sent the winning subject over real SMTP."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from mailer import delivery, editions
from mailer.mail.senders import make_sender
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Reader,
    ReaderEvent,
    SubjectTest,
    utcnow,
)
from tests.delivery.conftest import lane
from tests.support import factories
from tests.support.smtp import SmtpServer

SUBJECTS = ("Quiet subject", "Loud subject")


@pytest.fixture
def tracking(settings_override):  # type: ignore[no-untyped-def]
    settings_override(tracking=True)


def ab_edition(session, rt, readers: int, *, subjects=SUBJECTS, sample=20, wait=60,
               metric="clicks") -> Edition:
    t = factories.topic(session)
    for _ in range(readers):
        factories.reader(session, topics=[t])
    factories.article(session, topics=[t])
    d = factories.digest(session, topics=[t])
    spec = editions.check_subject_test(list(subjects), sample, wait, metric, tracking=True)
    edition = editions.start_edition(session, d.name, subject_test=spec)
    assert editions.prepare_edition(session, rt.settings, edition.id) == readers
    return edition


def rows(session, edition_id):
    return session.execute(select(Delivery.reader_id, Delivery.status, Delivery.subject_index)
                           .where(Delivery.edition_id == edition_id)).all()


def test_planning_splits_sample_and_rest_in_one_statement(session, rt, dispatch, tracking):
    statements: list[str] = []
    engine = session.get_bind()

    def record(conn, cursor, statement, *args):  # noqa: ANN001
        statements.append(statement.lstrip().upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        edition = ab_edition(session, rt, 101, subjects=("A", "B", "C"), sample=20)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # One INSERT writes every row, sample and rest; no row is updated afterwards.
    assert sum(s.startswith("INSERT INTO DELIVERIES") for s in statements) == 1
    assert not any(s.startswith("UPDATE DELIVERIES") for s in statements)

    planned = rows(session, edition.id)
    assert len(planned) == 101
    sample = [r for r in planned if r.status == DeliveryStatus.PENDING]
    held = [r for r in planned if r.status == DeliveryStatus.HELD]
    assert len(sample) == 20 and len(held) == 81  # floor(101 * 20%)
    assert Counter(r.subject_index for r in sample) == {0: 7, 1: 7, 2: 6}
    assert all(r.subject_index is None for r in held)
    test = session.get(SubjectTest, edition.id)
    session.refresh(edition)
    assert test.decide_at == edition.started_at + timedelta(minutes=60)
    assert edition.status == EditionStatus.SENDING


def test_split_is_deterministic_and_differs_per_edition(session, rt, dispatch, tracking):
    first = ab_edition(session, rt, 60, sample=50)
    sample_of = {r.reader_id for r in rows(session, first.id) if r.status == DeliveryStatus.PENDING}
    # Another edition of the same readers draws another sample.
    d = session.get(Edition, first.id).digest
    factories.article(session, topics=list(d.topics), published_at=utcnow())
    spec = editions.check_subject_test(list(SUBJECTS), 50, 60, "clicks", tracking=True)
    second = editions.start_edition(session, d.name, subject_test=spec)
    editions.prepare_edition(session, rt.settings, second.id)
    other = {r.reader_id for r in rows(session, second.id) if r.status == DeliveryStatus.PENDING}
    assert len(other) == len(sample_of) == 30
    assert other != sample_of


def test_a_small_edition_still_gives_every_subject_a_reader(session, rt, sender, dispatch, tracking):
    edition = ab_edition(session, rt, 5, subjects=("A", "B", "C", "D"), sample=5)
    sample = [r for r in rows(session, edition.id) if r.status == DeliveryStatus.PENDING]
    assert sorted(r.subject_index for r in sample) == [0, 1, 2, 3]
    # Two readers, two subjects: both in the sample, the edition finishes before
    # the wait is over, and its test still gets a result.
    small = ab_edition(session, rt, 2, sample=5)
    assert editions.status_counts(session, small.id) == {"pending": 2}
    lane(session, rt, sender, small.id)
    session.refresh(small)
    assert small.status == EditionStatus.DONE
    test = session.get(SubjectTest, small.id)
    assert small.id in editions.decide_subject_tests(session, rt.settings, now=test.decide_at)
    session.refresh(small)
    session.refresh(test)
    assert small.status == EditionStatus.DONE and test.winner == 0


def test_held_rows_are_never_sent_before_the_winner(session, rt, sender, dispatch, tracking):
    edition = ab_edition(session, rt, 30, sample=20)
    report = lane(session, rt, sender, edition.id)
    assert report.sent == 6
    assert {m[1] for m in sender.messages} == {
        e for e, in session.execute(select(Reader.email).join(
            Delivery, Delivery.reader_id == Reader.id).where(Delivery.status == DeliveryStatus.SENT))}
    # Neither a second lane nor the sweeper sends or finishes anything while rows are held.
    lane(session, rt, sender, edition.id)
    delivery.sweep(session, rt.settings)
    assert len(sender.messages) == 6
    session.refresh(edition)
    assert edition.status == EditionStatus.SENDING and edition.finished_at is None
    assert editions.status_counts(session, edition.id) == {"sent": 6, "held": 24}
    # The tick before the wait is over decides nothing.
    assert editions.decide_subject_tests(session, rt.settings) == []
    assert editions.progress(session, edition.id)["held"] == 24


def _click(session, edition_id: int, reader_ids, kind: str = "click") -> None:
    for reader_id in reader_ids:
        session.add(ReaderEvent(reader_id=reader_id, edition_id=edition_id, kind=kind,
                                detail={}))
    session.commit()


def test_winner_by_clicks_goes_to_the_rest_over_real_smtp(session, rt, dispatch, tracking, tmp_path):
    with SmtpServer() as smtp:
        real = make_sender(smtp.url, tmp_path)
        edition = ab_edition(session, rt, 40, sample=50)
        lane(session, rt, real, edition.id)
        assert len(smtp.handler.messages) == 20
        by_subject: dict[str, set[str]] = {}
        for m in smtp.handler.messages:
            by_subject.setdefault(str(m.message["Subject"]), set()).add(m.rcpt)
        assert {k: len(v) for k, v in by_subject.items()} == {SUBJECTS[0]: 10, SUBJECTS[1]: 10}

        index_of = {r.reader_id: r.subject_index for r in rows(session, edition.id)}
        first = [r for r, i in index_of.items() if i == 0]
        second = [r for r, i in index_of.items() if i == 1]
        # Subject 1 gets more human clicks; subject 0 more scanner hits (never counted).
        _click(session, edition.id, second[:4])
        _click(session, edition.id, second[:1])  # a second click by one reader counts once
        _click(session, edition.id, first[:2])
        _click(session, edition.id, first, kind="click-filtered")

        test = session.get(SubjectTest, edition.id)
        dispatch.sent.clear()
        decided = editions.decide_subject_tests(session, rt.settings,
                                                now=test.decide_at + timedelta(seconds=1))
        assert decided == [edition.id]
        session.refresh(test)
        assert test.winner == 1 and test.decided_at is not None
        assert [(f["clicks"], f["sent"]) for f in test.results] == [(2, 10), (4, 10)]
        assert dispatch.names().count("mailer.send_lane") == rt.settings.send_lanes
        # A second tick does not decide again.
        assert editions.decide_subject_tests(session, rt.settings,
                                             now=test.decide_at + timedelta(minutes=5)) == []

        lane(session, rt, real, edition.id)
        messages = smtp.handler.messages
        assert len(messages) == 40
        counted = Counter(m.rcpt for m in messages)
        assert max(counted.values()) == 1  # nobody got two emails
        rest = messages[20:]
        assert {str(m.message["Subject"]) for m in rest} == {SUBJECTS[1]}
    session.refresh(edition)
    assert edition.status == EditionStatus.DONE
    assert edition.subject == SUBJECTS[1]
    report = editions.subject_test_report(session, edition.id)
    assert report["winner_subject"] == SUBJECTS[1] and report["held"] == 0
    assert [s["winner"] for s in report["subjects"]] == [False, True]
    assert report["subjects"][1]["click_rate"] == 0.4


def test_opens_metric_excludes_machine_opens_and_a_tie_goes_to_the_first(
        session, rt, sender, dispatch, tracking):
    edition = ab_edition(session, rt, 20, sample=50, metric="opens")
    lane(session, rt, sender, edition.id)
    index_of = {r.reader_id: r.subject_index for r in rows(session, edition.id)}
    first = [r for r, i in index_of.items() if i == 0]
    second = [r for r, i in index_of.items() if i == 1]
    _click(session, edition.id, second, kind="open-filtered")  # Apple MPP, scanners
    _click(session, edition.id, second[:3], kind="click")  # clicks do not count here
    _click(session, edition.id, first[:1], kind="open")
    _click(session, edition.id, second[:1], kind="open")
    test = session.get(SubjectTest, edition.id)
    editions.decide_subject_tests(session, rt.settings, now=test.decide_at)
    session.refresh(test)
    assert test.winner == 0
    assert [f["opens"] for f in test.results] == [1, 1]


def test_pause_during_the_wait_keeps_the_rest_until_resume(session, rt, sender, dispatch, tracking):
    edition = ab_edition(session, rt, 10, sample=20)
    lane(session, rt, sender, edition.id)
    editions.pause_edition(session, edition.id)
    test = session.get(SubjectTest, edition.id)
    dispatch.sent.clear()
    assert editions.decide_subject_tests(session, rt.settings, now=test.decide_at) == [edition.id]
    assert dispatch.names() == []  # paused: no lanes
    lane(session, rt, sender, edition.id)
    assert len(sender.messages) == 2
    editions.resume_edition(session, rt.settings, edition.id)
    lane(session, rt, sender, edition.id)
    assert len(sender.messages) == 10
    assert len({m[1] for m in sender.messages}) == 10


def test_cancel_during_the_wait_cancels_the_held_rows(session, rt, sender, dispatch, tracking):
    edition = ab_edition(session, rt, 10, sample=20)
    lane(session, rt, sender, edition.id)
    editions.cancel_edition(session, edition.id)
    assert editions.status_counts(session, edition.id) == {"sent": 2, "cancelled": 8}
    test = session.get(SubjectTest, edition.id)
    assert editions.decide_subject_tests(session, rt.settings, now=test.decide_at) == []
    lane(session, rt, sender, edition.id)
    assert len(sender.messages) == 2


def test_lane_builds_one_skeleton_per_subject_not_a_query_per_reader(
        session, rt, sender, dispatch, tracking):
    edition = ab_edition(session, rt, 40, sample=50, subjects=("A", "B", "C", "D"))
    statements: list[str] = []
    engine = session.get_bind()
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        lane(session, rt, sender, edition.id)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(sender.messages) == 20
    assert len([s for s in statements if "FROM readers" in s]) == 1
    assert len([s for s in statements if "FROM subject_tests" in s]) <= 4


@pytest.mark.parametrize(("subjects", "sample", "wait", "metric", "field"), [
    (["only one"], 20, 60, "clicks", "subjects"),
    (["a", "b", "c", "d", "e"], 20, 60, "clicks", "subjects"),
    (["a", " "], 20, 60, "clicks", "subjects"),
    (["same", "same"], 20, 60, "clicks", "subjects"),
    (["a", "b"], 4, 60, "clicks", "sample_percent"),
    (["a", "b"], 51, 60, "clicks", "sample_percent"),
    (["a", "b"], 20, 9, "clicks", "wait_minutes"),
    (["a", "b"], 20, 24 * 60 + 1, "clicks", "wait_minutes"),
    (["a", "b"], 20, 60, "replies", "metric"),
])
def test_bad_tests_are_refused_naming_the_field(subjects, sample, wait, metric, field):
    from mailer.common.errors import ValidationError

    with pytest.raises(ValidationError) as caught:
        editions.check_subject_test(subjects, sample, wait, metric, tracking=True)
    assert field in caught.value.fields and caught.value.status == 400


def test_a_test_needs_tracking():
    from mailer.common.errors import ValidationError

    with pytest.raises(ValidationError) as caught:
        editions.check_subject_test(["a", "b"], tracking=False)
    assert "MAILER_TRACKING" in caught.value.fields["subjects"]
    assert editions.check_subject_test([], tracking=False) is None


def test_segment_targeted_one_off_reaches_only_the_segment(session, rt, sender, dispatch):
    from mailer.segments import save_segment

    t = factories.topic(session)
    inside = [factories.reader(session, topics=[t], frequency="weekly") for _ in range(3)]
    for _ in range(4):
        factories.reader(session, topics=[t])
    factories.article(session, topics=[t])
    d = factories.digest(session, topics=[t])
    segment = save_segment(session, {"name": "Weekly readers", "match": "all", "rules": [
        {"field": "frequency", "op": "is", "value": "weekly"}]})
    assert editions.plan_send(session, d.id, segment_id=segment.id).readers == 3
    edition = editions.start_edition(session, d.name, segment_id=segment.id)
    assert editions.prepare_edition(session, rt.settings, edition.id) == 3
    lane(session, rt, sender, edition.id)
    assert {m[1] for m in sender.messages} == {r.email for r in inside}
    # The digest itself is not narrowed: the next edition reaches the others.
    assert d.segment_id is None
    assert session.scalar(select(func.count()).select_from(Edition)) == 1


def test_the_beat_tick_decides_once_the_wait_is_over(session, rt, sender, dispatch, tracking):
    from sqlalchemy import update

    from workers.tasks import tick

    edition = ab_edition(session, rt, 10, sample=20)
    lane(session, rt, sender, edition.id)
    assert tick()["ab_decided"] == []
    session.execute(update(SubjectTest).values(decide_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    dispatch.sent.clear()
    assert tick()["ab_decided"] == [edition.id]
    assert "mailer.send_lane" in dispatch.names()
    lane(session, rt, sender, edition.id)
    assert len(sender.messages) == len({m[1] for m in sender.messages}) == 10
