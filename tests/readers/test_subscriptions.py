from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.common.errors import ValidationError
from mailer.common.tokens import Purpose, TokenError
from mailer.models import Reader, ReaderStatus, utcnow
from mailer.readers import subscriptions
from tests.support import factories


def test_subscribe_creates_pending_reader_and_queues_one_confirmation(session, dispatch):
    t = factories.topic(session, "local")
    result = subscriptions.subscribe(session, email="Ada@Example.COM", name="Ada",
                                     topics=["local"], ip="10.0.0.1")
    reader = session.get(Reader, result.reader_id)
    assert reader.status == ReaderStatus.PENDING
    assert reader.email_key == "ada@example.com"
    assert reader.consent_ip == "10.0.0.1" and reader.consent_at is not None
    assert reader.topics == [t]
    assert dispatch.sent == [("mailer.send_confirmations", ())]


def test_same_address_any_case_is_one_reader(session, dispatch):
    subscriptions.subscribe(session, email="ada@example.com")
    subscriptions.subscribe(session, email="ADA@example.com")
    assert len(session.scalars(select(Reader)).all()) == 1


def test_hundred_posts_send_at_most_one_confirmation(session, dispatch):
    for _ in range(100):
        subscriptions.subscribe(session, email="flood@example.com")
    assert dispatch.names().count("mailer.send_confirmations") == 1


def test_confirmation_can_be_sent_again_after_an_hour(session, dispatch):
    now = utcnow()
    subscriptions.subscribe(session, email="slow@example.com", now=now)
    subscriptions.subscribe(session, email="slow@example.com", now=now + timedelta(minutes=61))
    assert dispatch.names().count("mailer.send_confirmations") == 2


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b", "x" * 400 + "@example.com",
                                 "a@example.com\r\nBcc: victim@example.com", None, 5])
def test_invalid_email_is_refused_and_nothing_written(session, dispatch, bad):
    with pytest.raises(ValidationError) as info:
        subscriptions.subscribe(session, email=bad)
    assert "email" in info.value.fields
    session.rollback()
    assert session.scalars(select(Reader)).all() == []
    assert dispatch.sent == []


def test_unknown_topic_is_named(session, dispatch):
    with pytest.raises(ValidationError) as info:
        subscriptions.subscribe(session, email="a@example.com", topics=["nope"])
    assert "nope" in info.value.fields["topics"]


def test_confirm_token_confirms_once_and_stays_harmless(session, rt, dispatch):
    result = subscriptions.subscribe(session, email="c@example.com")
    reader = session.get(Reader, result.reader_id)
    token = subscriptions.confirmation_token(rt.tokens, reader)
    assert subscriptions.confirm(session, rt.tokens, token).reader.status == ReaderStatus.CONFIRMED
    assert subscriptions.confirm(session, rt.tokens, token).reader.status == ReaderStatus.CONFIRMED


def test_confirm_token_does_not_work_after_unsubscribe(session, rt, dispatch):
    result = subscriptions.subscribe(session, email="c@example.com")
    reader = session.get(Reader, result.reader_id)
    token = subscriptions.confirmation_token(rt.tokens, reader)
    subscriptions.confirm(session, rt.tokens, token)
    subscriptions.unsubscribe(session, reader.id, source="test")
    with pytest.raises(TokenError):
        subscriptions.confirm(session, rt.tokens, token)


def test_tokens_are_single_purpose(rt):
    confirm = rt.tokens.make(Purpose.CONFIRM, {"r": 1, "n": "x"})
    with pytest.raises(TokenError):
        rt.tokens.reader_id(Purpose.UNSUBSCRIBE, confirm, lambda _id: "")
    with pytest.raises(TokenError):
        rt.tokens.reader_id(Purpose.UNSUBSCRIBE, confirm[:-2] + "xx", lambda _id: "")


def test_suppressed_address_is_not_re_added(session, dispatch):
    subscriptions.suppress(session, "Gone@example.com", "erased")
    session.commit()
    result = subscriptions.subscribe(session, email="gone@example.com")
    assert result.reader_id is None and dispatch.sent == []


def test_resubscribe_after_unsubscribe_requires_confirmation(session, dispatch):
    r = factories.reader(session, "back@example.org")
    subscriptions.unsubscribe(session, r.id, source="test")
    subscriptions.subscribe(session, email="back@example.org")
    session.refresh(r)
    assert r.status == ReaderStatus.PENDING
    assert dispatch.names() == ["mailer.send_confirmations"]


def test_confirmation_task_run_twice_sends_one_email(session, rt, sender, dispatch):
    """Brokers deliver at least once: a re-delivered task must not mail again."""
    from mailer.readers import confirmations as transactional

    result = subscriptions.subscribe(session, email="twice@example.com")
    first = transactional.send_confirmation(session, rt.settings, rt.tokens, sender, result.reader_id)
    again = transactional.send_confirmation(session, rt.settings, rt.tokens, sender, result.reader_id)
    assert first is not None and first.sent and again is None
    assert len(sender.messages) == 1
    # A new request an hour later is a new email.
    subscriptions.subscribe(session, email="twice@example.com", now=utcnow() + timedelta(hours=2))
    assert transactional.send_confirmation(session, rt.settings, rt.tokens, sender,
                                           result.reader_id) is not None
    assert len(sender.messages) == 2


def test_concurrent_posts_of_one_new_address_make_one_reader(session, dispatch):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("concurrent writers are tested against PostgreSQL (SQLite serialises them)")
    import threading

    from sqlalchemy import func
    from sqlalchemy.orm import Session

    from mailer.models import ReaderEvent

    factories.topic(session, "local")
    engine = session.get_bind()
    for round_ in range(5):
        barrier = threading.Barrier(4)
        created: list[bool] = []
        errors: list[BaseException] = []

        def post() -> None:
            with Session(engine) as own:
                barrier.wait()
                try:
                    created.append(subscriptions.subscribe(
                        own, email=f"race{round_}@example.org", topics=["local"]).created)
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

        threads = [threading.Thread(target=post) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert not errors
        assert sorted(created) == [False, False, False, True]
    readers = session.scalars(select(Reader)).all()
    assert len(readers) == 5 and all(len(r.topics) == 1 for r in readers)
    assert session.scalar(select(func.count()).select_from(ReaderEvent)) == 5
