"""Run a Celery process (worker or beat) under a small supervisor.

    python -m workers.supervise celery -A workers.celery_app worker --loglevel INFO

Why: process managers such as honcho (`dev.py run`) send SIGTERM to the whole
process group of a Procfile line, Celery's pool children included, which turns
Celery's warm shutdown into killed tasks; and when one process of a Procfile
exits, honcho stops all the others. So this supervisor

- starts Celery in its own session, so a group-wide signal reaches only us;
- on SIGTERM or SIGINT sends one SIGTERM to Celery's main process (a warm
  shutdown: send lanes stop between two messages, release their claims and
  re-queue themselves) and waits `MAILER_STOP_SECONDS` (default 4, under
  honcho's 5 s) before a cold shutdown (SIGQUIT to the group);
- restarts Celery when it exits without being asked to (a crash, an OOM kill),
  after a back-off of 1, 2, 4 … 30 seconds, so the rest of the stack keeps running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from types import FrameType

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
# A child that ran this long before exiting counts as healthy: the back-off restarts.
HEALTHY_AFTER = 60.0


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the supervisor dies (even by SIGKILL), so a
    killed supervisor never leaves an orphaned worker behind. Linux only."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def log(message: str) -> None:
    print(f"[supervise {os.getpid()}] {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, command: list[str], stop_seconds: float) -> None:
        self.command = command
        self.stop_seconds = stop_seconds
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return  # one warm shutdown is enough; the deadline below ends it
        self.stopping = True
        child = self.child
        if child is not None and child.poll() is None:
            log(f"{signal.Signals(signum).name}: warm shutdown of {child.pid}")
            child.send_signal(signal.SIGTERM)

    def _stop_child(self) -> int:
        child = self.child
        assert child is not None
        try:
            return child.wait(timeout=self.stop_seconds)
        except subprocess.TimeoutExpired:
            log(f"{child.pid} still running after {self.stop_seconds}s: cold shutdown")
            try:
                os.killpg(child.pid, signal.SIGQUIT)
                return child.wait(timeout=2)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(child.pid, signal.SIGKILL)
                return child.wait()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        backoff = BACKOFF_START
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.command, start_new_session=True,
                                          preexec_fn=_die_with_parent)
            if self.stopping:  # a signal came while starting
                self.child.send_signal(signal.SIGTERM)
            while True:
                try:
                    code = self.child.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if self.stopping:
                        code = self._stop_child()
                        break
            if self.stopping:
                return 0 if code in (0, -signal.SIGTERM) else code
            if time.monotonic() - started > HEALTHY_AFTER:
                backoff = BACKOFF_START
            log(f"{self.command[0]} exited with {code}; restarting in {backoff:.0f}s")
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline and not self.stopping:
                time.sleep(0.1)
            if self.stopping:
                return 0
            backoff = min(backoff * 2, BACKOFF_MAX)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        stop_seconds = float(os.environ.get("MAILER_STOP_SECONDS", "4"))
    except ValueError:
        print("MAILER_STOP_SECONDS must be a number of seconds", file=sys.stderr)
        return 2
    return Supervisor(argv, stop_seconds).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
