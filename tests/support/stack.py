"""A running stack for end-to-end tests: app, SMTP server and the worker/beat
processes started for it (killed by the fixture that built it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask

from tests.support import processes
from tests.support.smtp import SmtpServer


@dataclass
class Stack:
    name: str
    env: dict[str, str]
    app: Flask
    smtp: SmtpServer
    log_dir: Path
    api_token: str
    procs: list[processes.Proc] = field(default_factory=list)

    def worker(self, name: str = "worker", concurrency: int = 2) -> processes.Proc:
        proc = processes.start_worker(self.env, self.log_dir, name, concurrency)
        self.procs.append(proc)
        return proc

    def beat(self) -> processes.Proc:
        proc = processes.start_beat(self.env, self.log_dir)
        self.procs.append(proc)
        return proc

    def wait(self, check, timeout: float, what: str):  # type: ignore[no-untyped-def]
        return processes.wait_for(check, timeout, what, self.procs)

    def api(self):  # type: ignore[no-untyped-def]
        """The Flask test client with the stack's API token."""
        client = self.app.test_client()
        headers = {"Authorization": f"Bearer {self.api_token}"}

        class Api:
            def get(self, path: str):  # type: ignore[no-untyped-def]
                return client.get(path, headers=headers)

            def post(self, path: str, json: object = None):  # type: ignore[no-untyped-def]
                return client.post(path, headers=headers, json=json)

        return Api()
