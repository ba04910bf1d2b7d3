"""A relay that misbehaves: what the sender reports for each fault, with a real
(if badly behaved) SMTP server on loopback. Before the body went out: nothing
was delivered (`relay`, or `misconfigured`); after: `unknown`."""

from __future__ import annotations

import pytest

from mailer.mail.senders import Result, SmtpSender, SmtpTarget, make_sender
from tests.support.badsmtp import BadSmtpServer, closed_port

BODY = b"Subject: hi\r\n\r\nhello\r\n"


def send(url: str, marks: list[int] | None = None):  # type: ignore[no-untyped-def]
    sender = SmtpSender(SmtpTarget.from_url(url))
    try:
        return sender.send("news@mailer.test", "a@example.org", BODY,
                           before_data=(lambda: marks.append(1)) if marks is not None else None)
    finally:
        sender.close()


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("mode", ["garbage_mail", "hang_rcpt", "drop_before_data"])
def test_faults_before_data_are_relay_state_and_deliver_nothing(mode: str, pipelining: bool):
    with BadSmtpServer(mode, pipelining=pipelining) as server:
        outcome = send(server.url())
        assert outcome.result == Result.RELAY, outcome
        assert outcome.retryable and not outcome.sent
        assert server.state.bodies == []


@pytest.mark.parametrize("mode", ["drop_after_data", "garbage_after_data"])
def test_faults_after_data_are_unknown(mode: str):
    with BadSmtpServer(mode) as server:
        marks: list[int] = []
        outcome = send(server.url(), marks)
        assert outcome.result == Result.UNKNOWN, outcome
        assert marks == [1]  # the row was `sending` before the body went out
        assert len(server.state.bodies) == 1


def test_refused_connection_and_421_greeting_are_relay_state():
    outcome = send(f"smtp://127.0.0.1:{closed_port()}?timeout=1")
    assert outcome.result == Result.RELAY and outcome.stage == "connect"
    with BadSmtpServer("greeting_421") as server:
        outcome = send(server.url())
        assert outcome.result == Result.RELAY and outcome.code == 421


def test_wrong_password_is_misconfigured_not_a_recipient_failure():
    with BadSmtpServer("auth_535", auth=True) as server:
        outcome = send(server.url().replace("smtp://", "smtp://user:wrong@"))
        assert outcome.result == Result.MISCONFIGURED and outcome.code == 535
        assert "credentials" in outcome.message
        assert outcome.retryable and not outcome.sent  # once someone fixes the password


def test_unusable_url_answers_misconfigured_for_every_send(tmp_path):
    sender = make_sender("smtp://relay.test:notaport", tmp_path)
    outcome = sender.send("a@b.test", "c@d.test", BODY)
    assert outcome.result == Result.MISCONFIGURED
    assert "MAILER_SMTP_URL" in outcome.message
    assert sender.probe() == outcome


def test_probe_connects_and_reports():
    with BadSmtpServer("ok") as server:
        sender = SmtpSender(SmtpTarget.from_url(server.url()))
        assert sender.probe() is None
        assert sender.send("a@b.test", "c@d.test", BODY).sent
        sender.close()
    probe = SmtpSender(SmtpTarget.from_url(f"smtp://127.0.0.1:{closed_port()}?timeout=1")).probe()
    assert probe is not None and probe.result == Result.RELAY


def test_settings_check_names_a_wrong_password_and_a_bad_url():
    from mailer.console.settings_checks import check_smtp

    with BadSmtpServer("auth_535", auth=True) as bad, BadSmtpServer("ok", auth=True) as good:
        result = check_smtp(f"smtp://u:right@127.0.0.1:{good.port},"
                            f"smtp://u:wrong@127.0.0.1:{bad.port}")
        assert not result.ok
        assert "accepted the login" in result.message
        assert f"127.0.0.1:{bad.port}: relay refused the credentials" in result.message
    result = check_smtp("smtp://relay.test?weight=heavy")
    assert not result.ok and "weight" in result.message
