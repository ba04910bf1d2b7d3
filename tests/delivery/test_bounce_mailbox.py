"""The bounce mailbox against a real Dovecot (IMAP and POP3, plain and TLS): DSNs
and ARF complaints map to the delivery through the VERP token (or Message-ID /
Original-Recipient), mailto unsubscribes work within one poll, junk is set
aside with a reason and nobody is suppressed by it."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy

import pytest
from sqlalchemy import func, select

from mailer import delivery
from mailer.delivery.bounce_mail import BounceReader
from mailer.models import Delivery, DeliveryStatus, Reader, ReaderStatus, Suppression
from mailer.readers.subscriptions import is_suppressed
from tests.delivery.test_lane_and_sweeper import planned_edition
from tests.support import bounce_corpus as corpus
from tests.support.dovecot import Dovecot, dovecot_server


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from dovecot_server()



@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[Dovecot]:
    dovecot.clear()
    yield dovecot
    dovecot.clear()


@pytest.fixture
def sent(session, rt, sender, dispatch, settings_override):
    """An edition of 5 sent with VERP; returns [(envelope from, rcpt, parsed message)]."""
    settings_override(return_path="bounces@mailer.test",
                      unsubscribe_mailto="unsubscribe@mailer.test", soft_bounce_limit=3)
    edition = planned_edition(session, rt, readers=5)
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, None))
    assert len(sender.messages) == 5
    return [(envelope, rcpt, email.message_from_bytes(raw, policy=policy.default))
            for envelope, rcpt, raw in sender.messages]


def poll(session, rt, url: str) -> delivery.PollReport:
    return delivery.poll_bounce_mailbox(session, rt.settings.__class__(
        **{**rt.settings.__dict__, "bounce_mailbox": url}), rt.tokens)


def suppressed_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Suppression))


def status_of(session, rcpt: str) -> str:
    return session.scalar(select(Reader.status).where(Reader.email == rcpt))


def delivery_status(session, rcpt: str) -> str:
    reader_id = session.scalar(select(Reader.id).where(Reader.email == rcpt))
    return session.scalar(select(Delivery.status).where(Delivery.reader_id == reader_id))


def test_verp_envelope_names_the_delivery_and_cannot_be_forged(sent, rt):
    from mailer.mail import delivery_of_token

    envelope = sent[0][0]
    local = envelope.split("@")[0]
    assert local.startswith("bounces+d")
    token = local.split("+", 1)[1]
    assert delivery_of_token(rt.settings.secret_key, token) is not None
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert delivery_of_token(rt.settings.secret_key, forged) is None
    assert delivery_of_token("another-install", token) is None


@pytest.mark.parametrize("scheme", ["imap", "imaps", "pop3", "pop3s"])
def test_a_full_corpus_is_applied_once_and_junk_is_set_aside(session, rt, sent, mailbox, scheme):
    (verp0, rcpt0, _), (_, rcpt1, msg1), (_, rcpt2, msg2), (_, rcpt3, msg3), (verp4, rcpt4, _) = sent
    unsub_header = str(msg3["List-Unsubscribe"])
    mailto = unsub_header.split("<mailto:")[1].rstrip(">")
    unsub_to, _, query = mailto.partition("?subject=")
    from urllib.parse import unquote

    mailbox.deliver(corpus.postfix_dsn(verp0, rcpt0))  # hard bounce, by VERP
    mailbox.deliver(corpus.exchange_dsn(rcpt1, str(msg1["Message-ID"])))  # by Message-ID
    mailbox.deliver(corpus.arf_complaint(rcpt2, str(msg2["Message-ID"])))  # complaint
    mailbox.deliver(corpus.mailto_unsubscribe(rcpt3, unsub_to, unquote(query)))  # unsubscribe
    mailbox.deliver(corpus.postfix_dsn(verp4, rcpt4, "4.2.2", "delayed"))  # one soft bounce
    mailbox.deliver(corpus.out_of_office(rcpt4))  # ignored
    forged = verp4.replace("bounces+d", "bounces+d9")  # a token naming another row
    junk = [corpus.junk_spam(), corpus.truncated_report(rcpt4), corpus.huge(rcpt4),
            corpus.bad_group_address(), corpus.postfix_dsn(forged, rcpt4)]
    for raw in junk:
        mailbox.deliver(raw)
    assert mailbox.count() == 11

    report = poll(session, rt, mailbox.url(scheme))
    assert report.error == ""
    assert (report.hard, report.complaints, report.unsubscribed, report.soft) == (2, 1, 1, 1)
    assert report.ignored == 1 and report.set_aside == len(junk), report.reasons
    assert mailbox.count() == 0  # every message removed after its effect was committed

    assert delivery_status(session, rcpt0) == DeliveryStatus.BOUNCED
    assert delivery_status(session, rcpt1) == DeliveryStatus.BOUNCED
    assert status_of(session, rcpt0) == ReaderStatus.BOUNCED
    assert status_of(session, rcpt2) == ReaderStatus.COMPLAINED
    assert status_of(session, rcpt3) == ReaderStatus.UNSUBSCRIBED
    assert status_of(session, rcpt4) == ReaderStatus.CONFIRMED  # soft bounce, junk: untouched
    assert delivery_status(session, rcpt4) == DeliveryStatus.SENT
    for address in (rcpt0, rcpt1, rcpt2):
        assert is_suppressed(session, address)
    assert not is_suppressed(session, rcpt4)
    assert suppressed_count(session) == 3

    aside = sorted((rt.settings.instance_path / "bounce-rejects").glob("*.eml"))
    reasons = [p.read_bytes().split(b"\r\n", 1)[0].decode() for p in aside]
    for expected in ("not a delivery report", "too big", "wrong signature",
                     "without a message/delivery-status part"):
        assert any(expected in r for r in reasons), (expected, reasons)


def test_repeated_soft_bounces_suppress_and_a_redelivered_report_counts_once(
        session, rt, sent, mailbox):
    verp, rcpt, _ = sent[0]
    same = corpus.postfix_dsn(verp, rcpt, "4.2.2", "delayed")
    mailbox.deliver(same)
    mailbox.deliver(same)  # the same report twice (e.g. not deleted after a crash)
    poll(session, rt, mailbox.url("imap"))
    assert status_of(session, rcpt) == ReaderStatus.CONFIRMED
    for status in ("4.4.1", "4.7.0"):
        mailbox.deliver(corpus.postfix_dsn(verp, rcpt, status, "delayed"))
    poll(session, rt, mailbox.url("imap"))
    assert is_suppressed(session, rcpt)
    assert status_of(session, rcpt) == ReaderStatus.BOUNCED


def test_a_failure_while_applying_keeps_the_message(session, rt, sent, mailbox, monkeypatch):
    verp, rcpt, _ = sent[0]
    mailbox.deliver(corpus.postfix_dsn(verp, rcpt))

    def broken(self, raw, complete=True):
        raise RuntimeError("database went away")

    monkeypatch.setattr(BounceReader, "apply", broken)
    report = poll(session, rt, mailbox.url("imap"))
    assert report.hard == 0 and mailbox.count() == 1
    monkeypatch.undo()
    report = poll(session, rt, mailbox.url("imap"))
    assert report.hard == 1 and mailbox.count() == 0
    assert is_suppressed(session, rcpt)


def test_wrong_password_or_no_server_is_reported_and_retried(session, rt, sent, mailbox):
    verp, rcpt, _ = sent[0]
    mailbox.deliver(corpus.postfix_dsn(verp, rcpt))
    report = poll(session, rt, mailbox.url("imap", password="wrong"))
    assert "AUTHENTICATIONFAILED" in report.error or "Authentication" in report.error
    assert "wrong" not in report.error  # the password is never shown
    report = poll(session, rt, "pop3://bounces:x@127.0.0.1:1/INBOX")
    assert report.error
    assert mailbox.count() == 1 and not is_suppressed(session, rcpt)
    report = poll(session, rt, mailbox.url("pop3"))
    assert report.hard == 1 and mailbox.count() == 0


def test_settings_check_shows_the_mailbox_state(rt, mailbox):
    good = rt.settings.__class__(**{**rt.settings.__dict__, "bounce_mailbox": mailbox.url("imaps")})
    assert delivery.check_bounce_mailbox(good)[0]
    bad = rt.settings.__class__(**{**rt.settings.__dict__,
                                  "bounce_mailbox": mailbox.url("imap", password="nope")})
    ok, message = delivery.check_bounce_mailbox(bad)
    assert not ok and "Authentication" in message and "nope" not in message


def test_unsubscribe_mail_with_a_bad_token_changes_nothing(session, rt, sent, mailbox):
    _, rcpt, _ = sent[0]
    mailbox.deliver(corpus.mailto_unsubscribe(rcpt, "unsubscribe@mailer.test",
                                              "unsubscribe r1.AAAAAAAAAAAAAAAAAAAAAA"))
    report = poll(session, rt, mailbox.url("imap"))
    assert report.set_aside == 1 and report.unsubscribed == 0
    assert session.scalar(select(func.count()).select_from(Reader)
                          .where(Reader.status != ReaderStatus.CONFIRMED)) == 0



def test_beat_polls_the_mailbox_only_when_one_is_configured(rt):
    from mailer.celery_setup import celery_config
    from mailer.jobs import TaskName

    assert "poll-bounces" not in celery_config(rt.settings)["beat_schedule"]
    with_mailbox = rt.settings.__class__(**{**rt.settings.__dict__,
                                            "bounce_mailbox": "imaps://u:p@mx.example/INBOX",
                                            "bounce_poll_seconds": 30.0})
    entry = celery_config(with_mailbox)["beat_schedule"]["poll-bounces"]
    assert entry["task"] == str(TaskName.POLL_BOUNCES)
    assert entry["schedule"].total_seconds() == 30


def test_the_worker_task_polls_through_the_runtime(app, rt, sent, mailbox, settings_override):
    from workers.tasks import poll_bounces

    verp, rcpt, _ = sent[0]
    mailbox.deliver(corpus.postfix_dsn(verp, rcpt))
    settings_override(bounce_mailbox=mailbox.url("pop3s"))
    result = poll_bounces.run()
    assert result["hard"] == 1 and result["error"] == ""
    assert mailbox.count() == 0


def test_unsubscribe_token_in_the_local_part_works_too(session, rt, sent, mailbox):
    _, rcpt, msg = sent[1]
    token = str(msg["List-Unsubscribe"]).split("/unsubscribe/")[1].split(">")[0]
    mailbox.deliver(corpus.mailto_unsubscribe(rcpt, f"unsubscribe+{token}@mailer.test",
                                              "Unsubscribe"))
    report = poll(session, rt, mailbox.url("imap"))
    assert report.unsubscribed == 1, report.reasons
    assert status_of(session, rcpt) == ReaderStatus.UNSUBSCRIBED
