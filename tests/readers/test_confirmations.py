"""Confirmation emails are drained from the readers table, woken in bulk."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from mailer.jobs import CeleryDispatcher
from mailer.mail.senders import Outcome, Result
from mailer.models import Reader, utcnow
from mailer.readers import confirmations as transactional
from mailer.readers import subscriptions
from tests.support import services


def drain(session, rt, sender, **kw):  # type: ignore[no-untyped-def]
    return transactional.send_due_confirmations(session, rt.settings, rt.tokens, sender, **kw)


def test_one_drain_sends_every_due_confirmation_once(session, rt, sender, dispatch):
    for n in range(5):
        subscriptions.subscribe(session, email=f"d{n}@example.org")
    rounds: list[int] = []
    report = drain(session, rt, sender, rearm=lambda: rounds.append(1))
    assert report.sent == 5 and not report.more
    assert sorted(rcpt for _, rcpt, _ in sender.messages) == [f"d{n}@example.org" for n in range(5)]
    assert len(rounds) == 2  # the round that sent, and the empty read that ended the run
    assert drain(session, rt, sender).sent == 0  # a second wake finds everything taken
    assert len(sender.messages) == 5


def test_confirmed_stale_and_taken_requests_are_not_due(session, rt, sender, dispatch):
    fresh = subscriptions.subscribe(session, email="fresh@example.org").reader_id
    old = subscriptions.subscribe(session, email="old@example.org").reader_id
    done = subscriptions.subscribe(session, email="done@example.org").reader_id
    session.execute(update(Reader).where(Reader.id == old)
                    .values(confirmation_sent_at=utcnow() - timedelta(hours=49)))
    session.execute(update(Reader).where(Reader.id == done).values(status="confirmed"))
    session.commit()
    assert transactional.confirmations_due(session) == [fresh]
    assert transactional.confirmations_due(session, older_than=60) == []
    drain(session, rt, sender)
    assert transactional.confirmations_due(session) == []


def test_a_temporary_failure_is_retried_by_a_later_wake_not_in_a_loop(session, rt, sender, dispatch):
    subscriptions.subscribe(session, email="later@example.org")
    sender.script["later@example.org"] = Outcome(Result.TEMPORARY, 451, "try later", "envelope")
    report = drain(session, rt, sender)
    assert report.sent == 0 and report.not_sent == 1
    assert len(transactional.confirmations_due(session)) == 1  # still due
    del sender.script["later@example.org"]
    assert drain(session, rt, sender).sent == 1


def test_a_permanent_refusal_is_not_retried(session, rt, sender, dispatch):
    subscriptions.subscribe(session, email="nobody@example.org")
    sender.script["nobody@example.org"] = Outcome(Result.PERMANENT, 550, "no such user", "envelope")
    assert drain(session, rt, sender).not_sent == 1
    assert transactional.confirmations_due(session) == []


def test_the_time_budget_hands_over_to_a_fresh_task(session, rt, sender, dispatch):
    for n in range(3):
        subscriptions.subscribe(session, email=f"b{n}@example.org")
    ticks = iter([0.0, 0.0, 0.0, 99.0, 99.0])
    report = drain(session, rt, sender, budget_seconds=1.0, clock=lambda: next(ticks))
    assert report.more and report.sent == 2


@pytest.fixture
def redis_dispatcher(app):  # type: ignore[no-untyped-def]
    services.require("redis")
    published: list[str] = []

    class Recording(CeleryDispatcher):
        def __call__(self, name, args):  # type: ignore[no-untyped-def]
            published.append(name)

    dispatcher = Recording(app.extensions["celery"], f"t-{uuid.uuid4().hex[:8]}", services.REDIS_URL)
    yield dispatcher, published
    dispatcher.rearm("mailer.send_confirmations")


def test_wakes_are_coalesced_in_redis_until_the_task_rearms(redis_dispatcher):
    dispatcher, published = redis_dispatcher
    for _ in range(50):
        dispatcher.wake("mailer.send_confirmations")
    assert published == ["mailer.send_confirmations"]
    dispatcher.rearm("mailer.send_confirmations")  # the task is about to read the rows
    dispatcher.wake("mailer.send_confirmations")
    assert published == ["mailer.send_confirmations"] * 2


def test_without_redis_every_wake_publishes(app):  # type: ignore[no-untyped-def]
    published: list[str] = []

    class Recording(CeleryDispatcher):
        def __call__(self, name, args):  # type: ignore[no-untyped-def]
            published.append(name)

    dispatcher = Recording(app.extensions["celery"], "q", "")
    dispatcher.wake("x")
    dispatcher.wake("x")
    assert published == ["x", "x"]
