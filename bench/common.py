"""Shared helpers for benchmarks: throwaway databases, SMTP sinks, process accounting.

Benchmarks print figures and write JSON under bench/results/ (git-ignored);
they never assert on timings.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout}s")


def create_pg_database(prefix: str = "mailer_bench") -> tuple[str, str]:
    """(database name, SQLAlchemy URL) of a new, empty database."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')



@contextmanager
def migrated_app(label: str) -> Iterator[Any]:
    """A PostgreSQL database of its own, migrated to head, with an app context
    entered (in-memory broker); the database is dropped afterwards."""
    from flask_migrate import upgrade

    from mailer import create_app

    name, url = create_pg_database()
    try:
        app = create_app(ratelimit=False, database_url=url, broker_url="memory://",
                         secret_key="bench", instance_path=Path(f"/tmp/mailer-bench-{label}"))
        with app.app_context():
            upgrade()
            yield app
    finally:
        drop_pg_database(name)

def child_env(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(settings)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class SmtpSink:
    """Postfix's C `smtp-sink` when installed; a Python (aiosmtpd) sink otherwise."""

    port: int
    kind: str
    proc: subprocess.Popen[bytes] | None = None
    controller: Any = None

    @classmethod
    def start(cls) -> SmtpSink:
        port = free_port()
        binary = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink"
                                                if Path("/usr/sbin/smtp-sink").exists() else None)
        if binary:
            args = [binary]
            if os.geteuid() == 0:
                args += ["-u", "nobody"]
            args += [f"127.0.0.1:{port}", "1000"]
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(port)
            return cls(port, "postfix smtp-sink", proc=proc)
        print("WARNING: Postfix smtp-sink not found; using a Python sink, which saturates "
              "at ~1,000 messages/s (install Debian's postfix for real figures)", file=sys.stderr)
        from aiosmtpd.controller import Controller

        class Discard:
            async def handle_DATA(self, server, session, envelope):
                return "250 OK"

        controller = Controller(Discard(), hostname="127.0.0.1", port=port)
        controller.start()
        return cls(port, "python aiosmtpd sink", controller=controller)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else os.getpid()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.controller is not None:
            self.controller.stop()


@dataclass
class CpuMeter:
    """CPU seconds spent by named processes between `start()` and `stop()`.

    Processes can be added while running (e.g. database backends as they
    connect); the time a process spent before it was first seen is excluded
    when it was seen before `start()`.
    """

    base: dict[int, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    peak_rss: dict[int, int] = field(default_factory=dict)

    @staticmethod
    def _cpu(pid: int) -> float | None:
        try:
            t = psutil.Process(pid).cpu_times()
            return float(t.user + t.system)
        except psutil.Error:
            return None

    def watch(self, pid: int, name: str, from_zero: bool = False) -> None:
        if pid in self.names:
            return
        cpu = self._cpu(pid)
        if cpu is None:
            return
        self.names[pid] = name
        self.base[pid] = 0.0 if from_zero else cpu
        self.last[pid] = cpu

    def sample(self) -> None:
        for pid in list(self.names):
            cpu = self._cpu(pid)
            if cpu is not None:
                self.last[pid] = cpu
            try:
                rss = psutil.Process(pid).memory_info().rss
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), rss)
            except psutil.Error:
                pass

    def by_name(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for pid, name in self.names.items():
            totals[name] = totals.get(name, 0.0) + self.last[pid] - self.base[pid]
        return totals


def peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
