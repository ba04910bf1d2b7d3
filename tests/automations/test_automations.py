"""Automations: definition checks, planning on confirmation, sending from their ledger."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy

import pytest
from sqlalchemy import select

from mailer import automations
from mailer.common import ValidationError
from mailer.jobs import TaskName
from mailer.mail.senders import Outcome, Result
from mailer.models import (
    Automation,
    AutomationDelivery,
    DeliveryStatus,
    Frequency,
    Reader,
    ReaderStatus,
    utcnow,
)
from mailer.readers import subscribe
from mailer.readers.subscriptions import unsubscribe
from tests.support import factories

WELCOME = {
    "name": "Welcome",
    "trigger": "reader.confirmed",
    "steps": [
        {"delay_minutes": 0, "subject": "Welcome aboard",
         "body_text": "{{ greeting }}\n\nThanks for joining, {{ name }}! 100% & <b>real</b>."},
        {"delay_minutes": 60 * 24 * 3, "subject": "Three days in",
         "body_text": "Here is what you missed."},
    ],
}


def _save(session, data=None):  # type: ignore[no-untyped-def]
    return automations.save_automation(session, data or WELCOME, "http://mailer.test")


def _rows(session):  # type: ignore[no-untyped-def]
    return session.scalars(select(AutomationDelivery).order_by(AutomationDelivery.id)).all()


def _drain(session, rt, sender):  # type: ignore[no-untyped-def]
    return automations.send_due_automations(session, rt.settings, rt.tokens, sender)


def test_confirming_a_reader_plans_every_step_in_the_same_transaction(session, dispatch):
    _save(session)
    result = subscribe(session, email="new@example.org", confirmed=True, source="api")
    rows = _rows(session)
    assert [(r.reader_id, r.status) for r in rows] == [(result.reader_id, "pending")] * 2
    assert rows[1].due_at - rows[0].due_at == timedelta(days=3)
    assert TaskName.SEND_AUTOMATIONS in dispatch.names()


def test_a_pending_signup_plans_nothing_until_confirmed(session, dispatch):
    _save(session)
    subscribe(session, email="later@example.org")
    assert _rows(session) == []


def test_welcome_is_sent_once_and_later_steps_wait(session, dispatch, rt, sender):
    _save(session)
    subscribe(session, email="ada@example.org", name="Ada", confirmed=True)
    report = _drain(session, rt, sender)
    assert report.sent == 1
    assert _drain(session, rt, sender).sent == 0  # a second drain sends nothing more
    (_, rcpt, raw), = sender.messages
    assert rcpt == "ada@example.org"
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Welcome aboard"
    assert msg["List-Unsubscribe"].startswith("<http://mailer.test/unsubscribe/")
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Hello Ada," in text and "Thanks for joining, Ada!" in text
    assert "100% &amp; &lt;b&gt;real&lt;/b&gt;" in html  # editor text is escaped
    statuses = [r.status for r in _rows(session)]
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.PENDING]


def test_due_later_step_goes_out_and_unsubscribe_stops_the_rest(session, dispatch, rt, sender):
    _save(session)
    a = subscribe(session, email="a@example.org", confirmed=True).reader_id
    b = subscribe(session, email="b@example.org", confirmed=True).reader_id
    _drain(session, rt, sender)
    assert len(sender.messages) == 2
    unsubscribe(session, b, source="test")
    for row in _rows(session):  # three days pass
        row.due_at = row.due_at - timedelta(days=3)
    session.commit()
    report = _drain(session, rt, sender)
    assert (report.sent, report.skipped) == (1, 1)
    assert [m[1] for m in sender.messages[2:]] == ["a@example.org"]
    skipped = [r for r in _rows(session) if r.status == DeliveryStatus.SKIPPED]
    assert [r.reader_id for r in skipped] == [b]
    assert a != b


def test_pause_skips_and_disabled_automation_skips(session, dispatch, rt, sender):
    automation = _save(session)
    rid = subscribe(session, email="p@example.org", confirmed=True).reader_id
    reader = session.get(Reader, rid)
    reader.frequency = Frequency.PAUSED
    session.commit()
    assert _drain(session, rt, sender).skipped == 1
    automations.set_enabled(session, automation.id, False)
    subscribe(session, email="q@example.org", confirmed=True)
    assert len(_rows(session)) == 2  # nothing planned while disabled
    assert sender.messages == []


def test_topics_restrict_who_enters(session, dispatch):
    sport = factories.topic(session, "sport")
    factories.topic(session, "arts")
    _save(session, {**WELCOME, "topics": ["sport"]})
    subscribe(session, email="arts@example.org", topics=["arts"], confirmed=True)
    assert _rows(session) == []
    subscribe(session, email="sport@example.org", topics=["sport"], confirmed=True)
    assert len(_rows(session)) == 2
    assert sport.slug == "sport"


def test_confirming_again_never_plans_a_step_twice(session, dispatch, rt, sender):
    _save(session)
    rid = subscribe(session, email="twice@example.org", confirmed=True).reader_id
    unsubscribe(session, rid, source="test")
    subscribe(session, email="twice@example.org", confirmed=True)
    assert session.get(Reader, rid).status == ReaderStatus.CONFIRMED
    assert len(_rows(session)) == 2
    _drain(session, rt, sender)
    assert len(sender.messages) == 1


def test_temporary_failure_retries_and_permanent_fails(session, dispatch, rt, sender):
    _save(session)
    sender.script["soft@example.org"] = Outcome(Result.TEMPORARY, 451, "try later", stage="envelope")
    sender.script["hard@example.org"] = Outcome(Result.PERMANENT, 550, "no such user",
                                                stage="envelope")
    subscribe(session, email="soft@example.org", confirmed=True)
    subscribe(session, email="hard@example.org", confirmed=True)
    report = _drain(session, rt, sender)
    assert (report.retry, report.failed) == (1, 1)
    by_status = {r.status: r for r in _rows(session) if r.status != DeliveryStatus.PENDING}
    assert by_status[DeliveryStatus.RETRY].due_at > utcnow()
    assert by_status[DeliveryStatus.FAILED].smtp_code == 550
    hard = session.scalar(select(Reader).where(Reader.email_key == "hard@example.org"))
    assert hard.status == ReaderStatus.BOUNCED


def test_a_row_left_sending_by_a_dead_worker_becomes_unknown(session, dispatch, rt, sender):
    _save(session)
    subscribe(session, email="crash@example.org", confirmed=True)
    row = _rows(session)[0]
    row.status, row.claimed_by = DeliveryStatus.SENDING, "dead-worker"
    row.claimed_at = utcnow() - timedelta(hours=1)
    session.commit()
    report = _drain(session, rt, sender)
    assert report.repaired == 1 and report.sent == 0
    assert _rows(session)[0].status == DeliveryStatus.UNKNOWN
    assert sender.messages == []


@pytest.mark.parametrize(("change", "field"), [
    ({"trigger": "reader.birthday"}, "trigger"),
    ({"steps": [{"delay_minutes": -1, "subject": "x", "body_text": "y"}]}, "steps[0].delay_minutes"),
    ({"steps": [{"delay_minutes": 525601, "subject": "x", "body_text": "y"}]},
     "steps[0].delay_minutes"),
    ({"steps": [{"delay_minutes": 0, "subject": "x", "body_text": "y",
                 "body_mjml": "<mjml><mj-body><mj-section>"}]}, "steps[0].body_mjml"),
    ({"steps": [{"delay_minutes": 0, "subject": "x", "body_text": "y"}] * 21}, "steps"),
    ({"steps": []}, "steps"),
    ({"steps": [{"delay_minutes": 0, "subject": "", "body_text": "y"}]}, "steps[0].subject"),
    ({"topics": ["nope"]}, "topics"),
    ({"name": ""}, "name"),
])
def test_bad_definitions_name_the_field_and_save_nothing(session, change, field):
    with pytest.raises(ValidationError) as caught:
        _save(session, {**WELCOME, **change})
    assert field in caught.value.fields
    session.rollback()
    assert session.scalars(select(Automation)).all() == []


def test_custom_mjml_compiles_once_with_placeholders(session, dispatch, rt, sender):
    mjml = ("<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ reader.name }}"
            "</mj-text></mj-column></mj-section></mj-body></mjml>")
    automation = _save(session, {"name": "Custom", "steps": [
        {"delay_minutes": 0, "subject": "Hi", "body_text": "Hi {{ name }}", "body_mjml": mjml}]})
    assert "%%name%%" in automation.steps[0].html
    subscribe(session, email="c@example.org", name="Cleo", confirmed=True)
    _drain(session, rt, sender)
    msg = email.message_from_bytes(sender.messages[0][2], policy=policy.default)
    assert "Hi Cleo" in msg.get_body(("html",)).get_content()
    version = automation.steps[0].version
    automations.save_automation(session, {"name": "Custom", "steps": [
        {"delay_minutes": 0, "subject": "Hi again", "body_text": "Hi", "body_mjml": mjml}]},
        "http://mailer.test", automation)
    assert automation.steps[0].version == version + 1


def test_figures_per_step(session, dispatch, rt, sender):
    automation = _save(session)
    subscribe(session, email="f@example.org", confirmed=True)
    _drain(session, rt, sender)
    data = automations.automation_json(session, automation)
    assert [(s["sent"], s["pending"]) for s in data["steps"]] == [(1, 0), (0, 1)]


def test_stale_claims_go_back_so_the_tick_wakes_a_drain(session, dispatch):
    _save(session)
    subscribe(session, email="stale@example.org", confirmed=True)
    row = _rows(session)[0]
    row.status, row.claimed_by = DeliveryStatus.CLAIMED, "dead-worker"
    row.claimed_at = utcnow() - timedelta(hours=1)
    session.commit()
    assert automations.due_count(session) == 0  # nothing looks due while it is claimed
    assert automations.repair_stale(session, 120, utcnow()) == 1
    assert automations.due_count(session) == 1
    assert _rows(session)[0].status == DeliveryStatus.PENDING
