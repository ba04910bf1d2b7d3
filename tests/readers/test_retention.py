"""Readers without dead ends: new links, signing up again (confirmed, unsubscribed,
erased), the "stay, but..." choices of the unsubscribe page and leaving reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mailer.common import ValidationError
from mailer.models import (
    Frequency,
    Reader,
    ReaderEvent,
    ReaderStatus,
    Suppression,
    SuppressionReason,
    utcnow,
)
from mailer.readers import (
    erase_reader,
    import_readers,
    keep_reader,
    reader_links_due,
    request_link,
    resume_due_readers,
    send_due_confirmations,
    send_reader_link,
    subscriptions,
    update_preferences,
)
from tests.support import factories

LINK_TASK = "mailer.send_reader_link"
CONFIRM_TASK = "mailer.send_confirmations"


def link_mails(session, rt, sender, dispatch):  # type: ignore[no-untyped-def]
    """Run the queued link tasks as a worker would, twice (at-least-once delivery)."""
    for name, args in list(dispatch.sent):
        if name == LINK_TASK:
            send_reader_link(session, rt.settings, rt.tokens, sender, *args)
            send_reader_link(session, rt.settings, rt.tokens, sender, *args)
    return [m for m in sender.messages]


def test_confirmed_reader_asking_for_a_link_gets_one_preferences_email(session, rt, sender, dispatch):
    reader = factories.reader(session, "Ada@Example.org")
    request_link(session, "ada@example.org")
    request_link(session, "ADA@example.org")  # again at once: one email per ten minutes
    assert dispatch.names() == [LINK_TASK]
    mails = link_mails(session, rt, sender, dispatch)
    assert len(mails) == 1 and mails[0][1] == "Ada@Example.org"
    body = mails[0][2].decode()
    assert "http://mailer.test/preferences/" in body.replace("=\r\n", "")
    assert reader_links_due(session, older_than=0) == []  # taken
    # Ten minutes later a new request is honoured.
    session.execute(update(Reader).where(Reader.id == reader.id)
                    .values(link_sent_at=utcnow() - timedelta(minutes=11)))
    session.commit()
    request_link(session, "ada@example.org")
    assert dispatch.names() == [LINK_TASK, LINK_TASK]


def test_pending_reader_gets_a_fresh_confirmation_and_strangers_nothing(session, rt, sender, dispatch):
    result = subscriptions.subscribe(session, email="pending@example.org")
    dispatch.sent.clear()
    request_link(session, "pending@example.org")  # the signup just took the slot
    assert dispatch.names() == []
    session.execute(update(Reader).where(Reader.id == result.reader_id)
                    .values(confirmation_sent_at=utcnow() - timedelta(minutes=11)))
    session.commit()
    request_link(session, "pending@example.org")
    assert dispatch.names() == [CONFIRM_TASK]
    report = send_due_confirmations(session, rt.settings, rt.tokens, sender)
    assert report.sent == 1 and "/confirm/" in sender.messages[0][2].decode().replace("=\r\n", "")
    dispatch.sent.clear()
    request_link(session, "nobody@example.org")
    factories.reader(session, "bounced@example.org", status=ReaderStatus.BOUNCED)
    request_link(session, "bounced@example.org")
    assert dispatch.names() == []
    with pytest.raises(ValidationError) as exc:
        request_link(session, "not an address")
    assert "email" in exc.value.fields


def test_unsubscribed_reader_asking_for_a_link_gets_the_preferences_link(session, rt, sender, dispatch):
    factories.reader(session, "gone@example.org", status=ReaderStatus.UNSUBSCRIBED)
    request_link(session, "gone@example.org")
    assert len(link_mails(session, rt, sender, dispatch)) == 1


def test_confirmed_reader_signing_up_again_gets_the_preferences_link(session, rt, sender, dispatch):
    reader = factories.reader(session, "again@example.org")
    result = subscriptions.subscribe(session, email="again@example.org", from_form=True)
    assert result.reader_id == reader.id and not result.confirmation_queued
    assert dispatch.names() == [LINK_TASK]
    session.expire_all()
    assert session.get(Reader, reader.id).status == ReaderStatus.CONFIRMED
    assert len(link_mails(session, rt, sender, dispatch)) == 1


def test_unsubscribed_reader_signing_up_again_gets_a_new_double_opt_in(session, rt, sender, dispatch):
    reader = factories.reader(session, "back@example.org", status=ReaderStatus.UNSUBSCRIBED)
    subscriptions.subscribe(session, email="back@example.org")
    session.expire_all()
    assert session.get(Reader, reader.id).status == ReaderStatus.PENDING
    assert dispatch.names() == [CONFIRM_TASK]


def test_erased_address_may_opt_in_again_through_the_form_only(session, rt, sender, dispatch):
    reader = factories.reader(session, "erased@example.org")
    erase_reader(session, reader.id)
    assert session.scalar(select(Suppression.reason)) == SuppressionReason.ERASED
    # The API and imports (no from_form) still refuse it.
    assert subscriptions.subscribe(session, email="erased@example.org").reader_id is None
    assert subscriptions.subscribe(session, email="erased@example.org", confirmed=True,
                                   from_form=True).reader_id is None
    assert import_readers(session, "email\nerased@example.org\n", consent=True).suppressed == 1
    # The form: a pending reader and a confirmation email; the suppression stays meanwhile.
    result = subscriptions.subscribe(session, email="erased@example.org", from_form=True)
    assert result.created and result.confirmation_queued
    assert session.scalar(select(Suppression.id)) is not None
    assert subscriptions.subscribe(session, email="erased@example.org", confirmed=True
                                   ).reader_id is None  # still refused while pending
    new = session.get(Reader, result.reader_id)
    subscriptions.confirm(session, rt.tokens, subscriptions.confirmation_token(rt.tokens, new))
    assert session.scalar(select(Suppression.id)) is None  # lifted by the owner's click
    assert session.get(Reader, result.reader_id).status == ReaderStatus.CONFIRMED


def test_bounce_and_complaint_suppressions_are_never_lifted_by_the_form(session, dispatch):
    subscriptions.suppress(session, "hard@example.org", "bounce")
    subscriptions.suppress(session, "angry@example.org", "complaint")
    session.commit()
    for address in ("hard@example.org", "angry@example.org"):
        assert subscriptions.subscribe(session, email=address, from_form=True).reader_id is None
    assert session.scalar(select(Reader.id)) is None and dispatch.names() == []


def test_switch_to_weekly_and_timed_pause_resume_by_themselves(session):
    reader = factories.reader(session, "stay@example.org", frequency=Frequency.DAILY)
    keep_reader(session, reader.id, "pause")
    session.expire_all()
    row = session.get(Reader, reader.id)
    assert row.frequency == Frequency.PAUSED and row.resume_frequency == Frequency.DAILY
    assert row.paused_until is not None and row.paused_until - utcnow() > timedelta(days=29)
    assert resume_due_readers(session) == 0  # not yet
    assert resume_due_readers(session, now=utcnow() + timedelta(days=31)) == 1
    session.expire_all()
    row = session.get(Reader, reader.id)
    assert (row.frequency, row.paused_until, row.resume_frequency) == (Frequency.DAILY, None, "")
    keep_reader(session, reader.id, "weekly")
    session.expire_all()
    assert session.get(Reader, reader.id).frequency == Frequency.WEEKLY
    kinds = list(session.scalars(select(ReaderEvent.kind).where(ReaderEvent.reader_id == reader.id)
                                 .order_by(ReaderEvent.id)))
    assert kinds == ["paused", "resumed", "preferences"]


def test_keep_refuses_unknown_choices_and_inactive_readers(session):
    reader = factories.reader(session, "x@example.org")
    with pytest.raises(ValidationError):
        keep_reader(session, reader.id, "forever")
    gone = factories.reader(session, "y@example.org", status=ReaderStatus.UNSUBSCRIBED)
    with pytest.raises(ValidationError) as exc:
        keep_reader(session, gone.id, "pause")
    assert exc.value.status == 409


def test_choosing_a_frequency_ends_a_timed_pause(session):
    reader = factories.reader(session, "p@example.org")
    keep_reader(session, reader.id, "pause")
    update_preferences(session, reader.id, name="", topics=[], frequency="paused")
    assert session.get(Reader, reader.id).paused_until is not None  # still their pause
    update_preferences(session, reader.id, name="", topics=[], frequency="weekly")
    assert session.get(Reader, reader.id).paused_until is None


def test_unsubscribe_reason_and_comment_are_kept_and_bounded(session):
    a = factories.reader(session, "a@example.org")
    b = factories.reader(session, "b@example.org")
    subscriptions.unsubscribe_by_link(session, a.id, source="page", reason="too-many",
                                      comment="  Far\x00 too\nmany  " + "x" * 2000)
    subscriptions.unsubscribe_by_link(session, b.id, source="page", reason="<script>", comment=5)
    events = {e.reader_id: e.detail for e in session.scalars(
        select(ReaderEvent).where(ReaderEvent.kind == "unsubscribed"))}
    assert events[a.id]["reason"] == "too-many"
    assert events[a.id]["comment"].startswith("Far too many x") and len(events[a.id]["comment"]) == 500
    assert events[b.id] == {"source": "page"}


def test_the_api_reposting_a_confirmed_reader_mails_nothing(session, dispatch):
    factories.reader(session, "listed@example.org")
    subscriptions.subscribe(session, email="listed@example.org", source="api")
    assert dispatch.names() == []
