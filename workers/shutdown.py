"""Tell long tasks that a warm shutdown has begun.

Celery's warm shutdown (one SIGTERM to the main process) waits for running tasks,
but the pool children running them are not told. The main process drops a flag
file named after its pid; a send lane checks for its parent's (or, in a solo or
threads pool, its own process's) flag between messages, stops, hands its claims
back and re-queues itself, so the next worker carries on within seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_CHECK_EVERY = 0.25  # seconds between looks at the flag: a stat is cheap, not free
_last_check = 0.0
_last_answer = False


def _flag(folder: Path, pid: int) -> Path:
    return folder / f"stopping-{pid}"


def request(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _flag(folder, os.getpid()).touch()


def clear(folder: Path) -> None:
    _flag(folder, os.getpid()).unlink(missing_ok=True)


def requested(folder: Path) -> bool:
    global _last_check, _last_answer
    now = time.monotonic()
    if now - _last_check >= _CHECK_EVERY:
        _last_check = now
        _last_answer = (_flag(folder, os.getppid()).exists()
                        or _flag(folder, os.getpid()).exists())
    return _last_answer
