"""Publishing work for the workers: task names, and publish-after-commit helpers.

`mailer` never imports `workers`. Code that wants work done calls
`enqueue_on_commit(name, *ids)`: the message is published only after the
surrounding transaction commits, so a worker can never look for a row that is
not there yet, and a rolled-back request publishes nothing.

Work that is recorded in rows and drained in bulk (confirmation emails) uses
`wake_on_commit(name)` instead: a task without arguments, published at most
once while one is pending (a Redis `SET NX` key, or on the embedded broker a
file, that the task clears before each round of reading the rows), so a burst
of signups costs one publish, not one each. The beat tick wakes the same tasks,
so nothing waits on a lost message.
"""

from __future__ import annotations

import logging
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from celery import Celery
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from mailer.models.base import DbSession

log = logging.getLogger(__name__)

PENDING_KEY = "mailer_pending_tasks"
WAKE_KEY = "mailer_pending_wakes"
# How long a wake stays "pending" if its task never clears it (a lost message):
# after this, the next wake publishes again.
WAKE_TTL_MS = 10_000


class TaskName(StrEnum):
    """Every task the workers run, by the name it is published under. The only
    place these names are written: publishers and `workers/tasks.py` use this."""

    # Drains every confirmation email the database says is due (see wake_on_commit).
    SEND_CONFIRMATIONS = "mailer.send_confirmations"
    SEND_EMAIL_CHANGE = "mailer.send_email_change"
    PREPARE_EDITION = "mailer.prepare_edition"
    SEND_LANE = "mailer.send_lane"
    POLL_FEED = "mailer.poll_feed"
    TICK = "mailer.tick"
    SEND_READER_LINK = "mailer.send_reader_link"
    POLL_BOUNCES = "mailer.poll_bounces"
    SEND_LOGIN_NOTICE = "mailer.send_login_notice"
    # Drain due automation emails and webhook calls (woken after commits and by the tick).
    SEND_AUTOMATIONS = "mailer.send_automations"
    SEND_WEBHOOKS = "mailer.send_webhooks"


def enqueue_on_commit(session: DbSession, name: TaskName, *args: Any) -> None:
    """Publish task `name(*args)` once `session` commits; drop it on rollback."""
    session.info.setdefault(PENDING_KEY, []).append((str(name), args))


def start_lanes_on_commit(session: DbSession, edition_id: int, lanes: int) -> None:
    """Queue an edition's send lanes (at least one) for after the commit."""
    for _ in range(max(1, lanes)):
        enqueue_on_commit(session, TaskName.SEND_LANE, edition_id)


def wake_on_commit(session: DbSession, name: TaskName) -> None:
    """Once `session` commits, make sure a `name()` task (one that drains rows
    the transaction wrote) is on its way; coalesced with any already pending."""
    session.info.setdefault(WAKE_KEY, set()).add(str(name))


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: DbSession) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    wakes = session.info.pop(WAKE_KEY, None)
    if not (pending or wakes) or not has_app_context():
        return
    dispatch = current_app.extensions["dispatch"]
    for name, args in pending or ():
        dispatch(name, args)
    for name in sorted(wakes or ()):
        dispatch.wake(name)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: DbSession) -> None:
    session.info.pop(PENDING_KEY, None)
    session.info.pop(WAKE_KEY, None)


def rearm_wake(name: str) -> None:
    """Called by a drain task before each read of its rows: a commit after this
    point publishes a fresh wake, one before it is seen by the read."""
    current_app.extensions["dispatch"].rearm(name)


class CeleryDispatcher:
    """Sends tasks by name. A broker outage is logged, not raised: the rows are
    committed, and the beat sweeper re-enqueues work the broker never got."""

    def __init__(self, celery_app: Celery, queue: str, redis_url: str = "",
                 wake_folder: Path | None = None) -> None:
        self.celery = celery_app
        self.queue = queue
        self.redis_url = redis_url
        self._redis: Any = None
        # Without Redis: a wake is pending while its file exists (and is younger
        # than WAKE_TTL_MS), the same rule as the Redis SET NX PX key.
        self.wake_folder = wake_folder
        if wake_folder is not None:
            wake_folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, args: tuple[Any, ...]) -> None:
        try:
            self.celery.send_task(name, args=list(args), queue=self.queue)
        except Exception:
            log.exception("could not enqueue %s%r; the sweeper will pick it up", name, args)

    def _wake_key(self, name: str) -> str:
        return f"mailer:wake:{self.queue}:{name}"

    def _client(self) -> Any:
        if self._redis is None and self.redis_url:
            import redis

            self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=2,
                                               socket_connect_timeout=2)
        return self._redis

    def _wake_file(self, name: str) -> Path | None:
        return None if self.wake_folder is None else self.wake_folder / f"{self.queue}.{name}"

    def _claim_wake_file(self, path: Path) -> bool:
        """Whether this caller may publish: it created the wake file, or took over
        one left by a wake whose task never came (older than WAKE_TTL_MS)."""
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return True
        except FileExistsError:
            pass
        try:
            age_ms = (time.time() - path.stat().st_mtime) * 1000
        except FileNotFoundError:
            return True  # cleared a moment ago by the task: publish
        if age_ms < WAKE_TTL_MS:
            return False
        os.utime(path)
        return True

    def wake(self, name: str) -> None:
        """Publish `name()` unless a wake is already pending: a Redis key, or on
        the embedded broker a file in the instance folder (shared by every process
        on the host), so a burst of signups costs one message either way."""
        path = self._wake_file(name)
        if path is not None:
            try:
                if not self._claim_wake_file(path):
                    return
            except OSError:
                log.warning("wake file for %s unavailable; publishing anyway", name, exc_info=True)
        client = self._client()
        if client is not None:
            try:
                if not client.set(self._wake_key(name), b"1", nx=True, px=WAKE_TTL_MS):
                    return
            except Exception:
                log.warning("wake key for %s unavailable; publishing anyway", name, exc_info=True)
        self(name, ())

    def rearm(self, name: str) -> None:
        path = self._wake_file(name)
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                log.warning("could not clear the wake file for %s", name, exc_info=True)
        client = self._client()
        if client is None:
            return
        try:
            client.delete(self._wake_key(name))
        except Exception:
            # The key expires by itself; until then the beat tick wakes the task.
            log.warning("could not clear the wake key for %s", name, exc_info=True)


class RecordingDispatcher:
    """For unit tests: remembers what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, name: str, args: tuple[Any, ...]) -> None:
        self.sent.append((name, args))

    def wake(self, name: str) -> None:
        self.sent.append((name, ()))

    def rearm(self, name: str) -> None:
        pass

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]
