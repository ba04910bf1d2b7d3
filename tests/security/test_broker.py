"""The embedded broker (issue 15): message files appear whole or not at all, a
malformed one is dropped with a log line instead of killing the worker, and
wakes are coalesced without Redis so a signup flood costs a bounded number of
broker messages."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from mailer import broker_fs
from mailer.jobs import WAKE_TTL_MS, CeleryDispatcher


def _queue_name() -> str:
    # kombu keeps queue bindings in process-wide state: a fresh name per test
    # binds it in this test's own control folder.
    return f"jobs{uuid.uuid4().hex[:8]}"


def _connection(folder: Path) -> Connection:
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return Connection(f"{broker_fs.ALIAS}://", transport_options={
        "data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control"),
        "store_processed": False})


def test_messages_round_trip_and_bad_files_are_dropped(tmp_path, caplog, monkeypatch):
    # Alembic's logging setup (run by other tests) disables loggers that existed before it.
    monkeypatch.setattr(logging.getLogger("mailer.broker_fs"), "disabled", False)
    with _connection(tmp_path) as conn:
        name = _queue_name()
        queue = conn.SimpleQueue(name)
        queue.put({"n": 1})
        inbox = tmp_path / "queue"
        # What a crashed writer or a stray editor leaves: garbage, half a JSON
        # document, and a temporary file still being written.
        (inbox / f"1_garbage.{name}.msg").write_bytes(b"\x00\xff not json")
        (inbox / f"2_half.{name}.msg").write_bytes(b'{"body": "abc", "headers": {')
        (inbox / f".3_inflight.{name}.msg.tmp").write_bytes(b'{"body"')
        queue.put({"n": 2})
        with caplog.at_level(logging.ERROR, logger="mailer.broker_fs"):
            got = sorted(queue.get(timeout=2).payload["n"] for _ in range(2))
        assert got == [1, 2]
        with pytest.raises(Empty):
            queue.get(timeout=0.3)
        assert sum("malformed broker message" in r.message for r in caplog.records) == 2
        assert [p.name for p in inbox.iterdir()] == [f".3_inflight.{name}.msg.tmp"]
        assert list((tmp_path / "processed").iterdir()) == []
        queue.close()


def test_a_message_file_is_never_visible_half_written(tmp_path, monkeypatch):
    seen: list[list[str]] = []
    real_replace = os.replace

    def watching_replace(src, dst):  # type: ignore[no-untyped-def]
        if str(dst).endswith(".msg"):  # kombu may replace its own control files too
            seen.append([n for n in os.listdir(tmp_path / "queue") if not n.startswith(".")])
        return real_replace(src, dst)

    monkeypatch.setattr(broker_fs.os, "replace", watching_replace)
    with _connection(tmp_path) as conn:
        name = _queue_name()
        queue = conn.SimpleQueue(name)
        queue.put({"n": 1})
        queue.close()
    # Just before the rename the message existed only as the hidden temp file.
    assert seen == [[]]
    assert len([n for n in os.listdir(tmp_path / "queue") if n.endswith(f".{name}.msg")]) == 1


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_task(self, name: str, args: list[object], queue: str) -> None:
        self.sent.append(name)


def test_wakes_are_coalesced_without_redis(tmp_path):
    celery = _Recorder()
    dispatch = CeleryDispatcher(celery, "q", "", wake_folder=tmp_path / "wakes")  # type: ignore[arg-type]
    for _ in range(1000):
        dispatch.wake("mailer.send_confirmations")
    assert celery.sent == ["mailer.send_confirmations"]
    dispatch.rearm("mailer.send_confirmations")  # the task is reading the rows
    dispatch.wake("mailer.send_confirmations")
    dispatch.wake("mailer.send_confirmations")
    assert len(celery.sent) == 2
    # A wake whose task never came (lost message) stops blocking after the TTL.
    stale = time.time() - WAKE_TTL_MS / 1000 - 1
    os.utime(tmp_path / "wakes" / "q.mailer.send_confirmations", (stale, stale))
    dispatch.wake("mailer.send_confirmations")
    assert len(celery.sent) == 3
    # Another process (another dispatcher on the same folder) sees the same wake.
    other = CeleryDispatcher(celery, "q", "", wake_folder=tmp_path / "wakes")  # type: ignore[arg-type]
    other.wake("mailer.send_confirmations")
    assert len(celery.sent) == 3


def test_only_one_drain_runs_at_a_time_on_one_host(tmp_path):
    with broker_fs.single_runner(tmp_path, "drain") as first:
        with broker_fs.single_runner(tmp_path, "drain") as second:
            assert (first, second) == (True, False)
    with broker_fs.single_runner(tmp_path, "drain") as again:
        assert again
