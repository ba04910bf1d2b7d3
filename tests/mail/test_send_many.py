"""Several messages at once over several connections to one relay (`send_many`),
against real SMTP servers on loopback: one `before_data` call for the group, no
body before it returns, per-message outcomes, and the byte form of a body."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailer.mail.senders import (
    Envelope,
    MemorySender,
    Outcome,
    Result,
    SmtpSender,
    SmtpTarget,
    data_terminated,
    send_many,
)
from tests.support.badsmtp import BadSmtpServer, closed_port
from tests.support.smtp import SmtpServer


def body(n: int) -> bytes:
    return (f"Subject: m{n}\r\nTo: r{n}@example.org\r\n\r\nline one\r\n.starts with a dot\r\n"
            f"reader {n}\r\n").encode()


def items(count: int) -> list[Envelope]:
    return [Envelope("news@mailer.test", f"r{n}@example.org", body(n)) for n in range(count)]


def test_a_group_goes_out_with_one_before_data_call_and_no_body_before_it():
    with SmtpServer() as server:
        sender = SmtpSender(SmtpTarget.from_url(server.url))
        calls: list[tuple[list[int], int]] = []

        def before_data(indices: list[int]) -> set[int]:
            calls.append((list(indices), len(server.handler.messages)))
            return set(indices)

        try:
            outcomes = send_many(sender, items(4), before_data)
            assert [o.result if o else None for o in outcomes] == [Result.SENT] * 4
            assert calls == [([0, 1, 2, 3], 0)]  # one call, nothing delivered before it
            assert len(sender._peers) == 3  # four connections to the relay
            # Reused: the next group opens nothing new.
            outcomes = send_many(sender, items(4), before_data)
            assert all(o is not None and o.sent for o in outcomes)
            assert len(sender._peers) == 3
        finally:
            sender.close()
        got = sorted((m.rcpt, m.data.replace(b"\r\n", b"\n")) for m in server.handler.messages)
        want = sorted((f"r{n}@example.org", body(n).replace(b"\r\n", b"\n")) for n in range(4)) * 2
        assert sorted(got) == sorted(want)
        assert server.handler.messages[0].message["Subject"].startswith("m")


def test_held_back_messages_are_abandoned_and_refused_recipients_reported():
    with SmtpServer() as server:
        server.handler.rcpt_script["r1@example.org"] = ["550 no such user"]
        server.handler.rcpt_script["r3@example.org"] = ["451 try later"]
        sender = SmtpSender(SmtpTarget.from_url(server.url))
        try:
            outcomes = send_many(sender, items(4), lambda idx: set(idx) - {2})
            assert outcomes[0] is not None and outcomes[0].sent
            assert outcomes[1] is not None and outcomes[1].result == Result.PERMANENT
            assert outcomes[1].stage == "envelope" and outcomes[1].counted  # marked first
            assert outcomes[2] is None  # held back: its transaction was abandoned
            assert outcomes[3] is not None and outcomes[3].result == Result.TEMPORARY
            # The connections recover: a second group all goes through.
            again = send_many(sender, items(4), lambda idx: set())
            assert again == [None] * 4  # all held back: nothing delivered
            again = send_many(sender, items(4), lambda idx: set(idx))
            assert all(o is not None and o.sent for o in again)
        finally:
            sender.close()
        assert sorted(m.rcpt for m in server.handler.messages) == [
            "r0@example.org", "r0@example.org", "r1@example.org", "r2@example.org",
            "r3@example.org"]


def test_an_exception_in_before_data_delivers_nothing():
    with SmtpServer() as server:
        sender = SmtpSender(SmtpTarget.from_url(server.url))

        def boom(indices: list[int]) -> set[int]:
            raise RuntimeError("database gone")

        try:
            try:
                send_many(sender, items(3), boom)
            except RuntimeError:
                pass
            else:
                raise AssertionError("the error must reach the lane")
            outcomes = send_many(sender, items(3), lambda idx: set(idx))
            assert all(o is not None and o.sent for o in outcomes)
        finally:
            sender.close()
        assert len(server.handler.messages) == 3


def test_relay_unreachable_answers_for_the_first_message_only():
    sender = SmtpSender(SmtpTarget.from_url(f"smtp://127.0.0.1:{closed_port()}?timeout=1"))
    marks: list[list[int]] = []
    outcomes = send_many(sender, items(3), lambda idx: marks.append(idx) or set(idx))
    assert outcomes[0] is not None and outcomes[0].result == Result.RELAY
    assert not outcomes[0].counted and outcomes[1:] == [None, None]
    assert marks == []


def test_a_relay_without_pipelining_gets_one_message_at_a_time():
    with BadSmtpServer("ok", pipelining=False) as server:
        sender = SmtpSender(SmtpTarget.from_url(server.url()))
        calls: list[list[int]] = []
        try:
            outcomes = send_many(sender, items(3), lambda idx: calls.append(idx) or set(idx))
        finally:
            sender.close()
        assert all(o is not None and o.sent for o in outcomes)
        assert calls == [[0], [1], [2]]
        assert len(server.state.bodies) == 3


def test_a_relay_that_takes_fewer_connections_gets_fewer():
    with SmtpServer() as server:
        sender = SmtpSender(SmtpTarget.from_url(server.url))
        # The second connection goes where nothing listens (the relay's cap).
        sender._peers = [SmtpSender(SmtpTarget.from_url(
            f"smtp://127.0.0.1:{closed_port()}?timeout=1"))]
        calls: list[list[int]] = []
        try:
            outcomes = send_many(sender, items(3), lambda idx: calls.append(idx) or set(idx))
            assert outcomes[0] is not None and outcomes[0].sent
            assert outcomes[1:] == [None, None]  # not attempted: the lane sends them next
            assert calls == [[0]]
            # For a while, one connection only: all get through, one at a time.
            outcomes = send_many(sender, items(3)[1:], lambda idx: set(idx))
            assert outcomes[0] is not None and outcomes[0].sent and outcomes[1] is None
        finally:
            sender.close()
        assert [m.rcpt for m in server.handler.messages] == ["r0@example.org", "r1@example.org"]


def test_other_senders_send_one_by_one_and_stop_at_a_relay_failure():
    memory = MemorySender()
    calls: list[list[int]] = []
    outcomes = send_many(memory, items(3), lambda idx: calls.append(idx) or set(idx))
    assert all(o is not None and o.sent for o in outcomes) and calls == [[0], [1], [2]]
    outcomes = send_many(memory, items(3), lambda idx: set(idx) - {1})
    assert outcomes[1] is None and len(memory.messages) == 5
    memory.relay_down = Outcome(Result.RELAY, 0, "down", "connect")
    outcomes = send_many(memory, items(3), lambda idx: set(idx))
    assert outcomes[0] is not None and outcomes[0].result == Result.RELAY
    assert outcomes[1:] == [None, None]


@given(st.lists(st.sampled_from([b"a", b".", b"\r\n", b"..", b" ", b"\r\n."]), max_size=40))
def test_data_terminated_dot_stuffs_and_ends_with_the_final_dot(parts: list[bytes]):
    raw = b"".join(parts)
    out = data_terminated(raw)
    assert out.endswith(b"\r\n.\r\n")
    lines = out[:-3].split(b"\r\n")
    # Undoing the stuffing gives back the message (with a CRLF end added when missing).
    unstuffed = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    expected = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    assert unstuffed == expected
    assert all(line != b"." for line in lines)  # only the final dot ends the data
