"""The embedded broker: kombu's filesystem transport, made safe to share
between processes.

kombu's own `_put` creates the message file and then writes into it, so a worker
listing the folder at that moment can read it half-written (JSONDecodeError,
and the worker dies); its `_get` lists the whole folder for every message and
moves claimed files to the system temp folder, which may be another filesystem
(a copy, not an atomic claim). Here:

- a message is written to a hidden temporary file and renamed into place, so it
  is either absent or complete;
- a worker claims a file by renaming it into the broker's own `processed` folder
  (same filesystem: atomic, exactly one worker wins);
- a file that still cannot be decoded is logged and dropped, never fatal;
- one folder listing serves several `_get` calls.

Registered as the `mailerfs` transport; `celery_setup` uses it for the
embedded default (`MAILER_BROKER_URL` unset or `filesystem://`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)

ALIAS = "mailerfs"
# How long one folder listing is trusted before the next `_get` lists again.
LISTING_SECONDS = 0.5


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listed: dict[str, deque[str]] = {}
        self._listed_at: dict[str, float] = {}

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        folder = Path(self.data_folder_out)
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        # A leading dot: never taken for a message by any reader, ours or kombu's.
        temp = folder / f".{name}.tmp"
        try:
            with open(temp, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(temp, folder / name)
        except OSError as exc:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc

    def _names(self, queue: str) -> deque[str]:
        names = self._listed.get(queue)
        now = time.monotonic()
        if not names or now - self._listed_at.get(queue, 0.0) > LISTING_SECONDS:
            wanted = f"{queue}.msg"
            names = deque(sorted(n for n in os.listdir(self.data_folder_in)
                                 if not n.startswith(".") and n.partition(".")[2] == wanted))
            self._listed[queue], self._listed_at[queue] = names, now
        return names

    def _get(self, queue: str, timeout: Any = None) -> Any:
        names = self._names(queue)
        processed = Path(self.processed_folder)
        processed.mkdir(parents=True, exist_ok=True)
        while names:
            name = names.popleft()
            claimed = processed / f"{name}.{os.getpid()}"
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another worker took it
            try:
                payload = claimed.read_bytes()
                message = loads(bytes_to_str(payload))
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                log.error("dropped a malformed broker message %s: %s", name, exc)
                message = None
            finally:
                if not self.store_processed:
                    try:
                        claimed.unlink()
                    except OSError:
                        pass
            if isinstance(message, dict):
                return message
            if message is not None:
                log.error("dropped a broker message %s that is not an object", name)
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
    driver_name = ALIAS


TRANSPORT_ALIASES[ALIAS] = f"{__name__}:Transport"


@contextlib.contextmanager
def single_runner(instance_path: Path, name: str) -> Iterator[bool]:
    """Yields True to the one process on this host that holds `name`'s lock, False
    to the others (at once, without waiting). On the embedded broker a drain
    task that finds another one running returns, so a flood of wake messages
    never occupies every worker process while new sends wait."""
    folder = instance_path / "broker" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
