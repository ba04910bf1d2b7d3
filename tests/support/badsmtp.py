"""A misbehaving SMTP server on loopback: answers garbage, hangs mid-reply, drops
the connection before or after DATA, refuses credentials, or greets with 421.

Just enough SMTP for smtplib: one thread per connection, line by line, so
pipelined commands are answered in order like a real server would.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field

MODES = ("ok", "garbage_mail", "hang_rcpt", "drop_before_data", "drop_after_data",
         "garbage_after_data", "auth_535", "greeting_421", "refuse_421_rcpt")


@dataclass
class BadState:
    mode: str = "ok"
    pipelining: bool = True
    auth: bool = False
    bodies: list[bytes] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        state = self.server.state
        with state.lock:
            state.connections += 1
        if state.mode == "greeting_421":
            self.reply("421 bad.test too busy, come back later")
            return
        self.reply("220 bad.test ESMTP")
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            verb = raw.decode(errors="replace").strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                lines = ["bad.test"]
                if state.pipelining:
                    lines.append("PIPELINING")
                if state.auth:
                    lines.append("AUTH PLAIN LOGIN")
                for extra in lines[:-1]:
                    self.reply(f"250-{extra}")
                self.reply(f"250 {lines[-1]}")
            elif verb == "AUTH":
                if state.mode == "auth_535":
                    self.reply("535 5.7.8 Authentication credentials invalid")
                else:
                    self.reply("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                if state.mode == "garbage_mail":
                    self.reply("HELLO THERE \x00 what?")
                else:
                    self.reply("250 OK")
            elif verb == "RCPT":
                if state.mode == "hang_rcpt":
                    time.sleep(30)
                    return
                if state.mode == "drop_before_data":
                    return
                if state.mode == "refuse_421_rcpt":
                    self.reply("421 4.3.2 try later")
                    continue
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                body = b""
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return  # the client hung up mid-body: nothing to deliver
                    if line == b".\r\n":
                        break
                    body += line
                with state.lock:
                    state.bodies.append(body)
                if state.mode == "drop_after_data":
                    return
                if state.mode == "garbage_after_data":
                    self.reply("???")
                    return
                self.reply("250 2.0.0 queued")
            elif verb == "RSET" or verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: BadState


class BadSmtpServer:
    def __init__(self, mode: str = "ok", pipelining: bool = True, auth: bool = False) -> None:
        assert mode in MODES
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.state = BadState(mode=mode, pipelining=pipelining, auth=auth)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def state(self) -> BadState:
        return self.server.state

    def url(self, query: str = "timeout=1") -> str:
        return f"smtp://127.0.0.1:{self.port}?{query}"

    def __enter__(self) -> BadSmtpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
