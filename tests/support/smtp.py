"""A real SMTP server (aiosmtpd) for tests, with scriptable per-recipient answers."""

from __future__ import annotations

import email
import socket
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Handler:
    messages: list[Received] = field(default_factory=list)
    # rcpt -> list of answers to give first (e.g. ["451 later"]), then accept
    rcpt_script: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Offer PIPELINING (RFC 2920) like Postfix does: lanes then send groups of
    # messages over several connections (aiosmtpd reads pipelined commands fine).
    pipelining: bool = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001
        session.host_name = hostname
        if self.pipelining and responses:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        with self.lock:
            answers = self.rcpt_script.get(address.lower())
            if answers:
                answer = answers.pop(0)
                if not answer.startswith("2"):
                    return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append(Received(envelope.mail_from, rcpt, envelope.content))
        return "250 Message accepted"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.rcpt.lower() == address.lower()]


class SmtpServer:
    def __init__(self, pipelining: bool = True) -> None:
        self.handler = Handler(pipelining=pipelining)
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     data_size_limit=10_000_000)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
