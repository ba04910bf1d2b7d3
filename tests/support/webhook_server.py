"""A real HTTP server on loopback that receives webhook calls and verifies their
Standard Webhooks signature (written here from the specification, independently
of the code under test)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    candidates = [s.partition(",")[2] for s in headers["webhook-signature"].split()
                  if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, c) for c in candidates)


@dataclass
class Receiver:
    url: str = ""
    secret: str = ""
    # What to answer, in turn (the last one repeats): an HTTP status, or "hang".
    answers: list[int | str] = field(default_factory=lambda: [200])
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int | str:
        with self.lock:
            index = min(len(self.calls), len(self.answers)) - 1
            return self.answers[max(index, 0)]

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.calls)


@contextmanager
def webhook_receiver(answers: list[int | str] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(answers=answers or [200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.calls.append({
                    "headers": headers, "body": body, "at": time.monotonic(),
                    "json": json.loads(body),
                    "valid": bool(receiver.secret) and verify(receiver.secret, headers, body)})
            answer = receiver.answer()
            if answer == "hang":
                time.sleep(30)
                return
            self.send_response(int(answer))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
