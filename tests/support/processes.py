"""Start real worker and beat processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole process group (prefork children included)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def environment(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(settings)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code, whatever is installed
    return env


def start_worker(env: dict[str, str], log_dir: Path, name: str = "worker",
                 concurrency: int = 2) -> Proc:
    return Proc(name, [str(BIN / "celery"), "-A", "workers.celery_app", "worker",
                       "--loglevel", "INFO", "--concurrency", str(concurrency),
                       "--without-gossip", "--without-mingle", "-n", f"{name}@%h"],
                env, log_dir)


def start_beat(env: dict[str, str], log_dir: Path) -> Proc:
    return Proc("beat", [str(BIN / "celery"), "-A", "workers.celery_app", "beat",
                         "--loglevel", "INFO"], env, log_dir)


def flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "flask"), "--app", "mailer", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def wait_for(check: Callable[[], object], timeout: float, what: str,
             procs: list[Proc] | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name} ---\n{p.output()[-4000:]}" for p in procs or [])
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")
