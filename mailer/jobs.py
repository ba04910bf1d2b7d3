"""Celery glue: the Celery app lives in the Flask app, tasks are sent by name.

`mailer` never imports `workers`. Code that wants work done calls
`enqueue_on_commit(name, *ids)`: the message is published only after the
surrounding transaction commits, so a worker can never look for a row that is
not there yet, and a rolled-back request publishes nothing.

Work that is recorded in rows and drained in bulk (confirmation emails) uses
`wake_on_commit(name)` instead: a task without arguments, published at most
once while one is pending (a Redis `SET NX` key the task clears before each
round of reading the rows), so a burst of signups costs one publish, not one
each. The beat tick wakes the same tasks, so nothing waits on a lost message.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.models.base import DbSession

log = logging.getLogger(__name__)

PENDING_KEY = "mailer_pending_tasks"
WAKE_KEY = "mailer_pending_wakes"
# How long a wake stays "pending" if its task never clears it (a lost message):
# after this, the next wake publishes again.
WAKE_TTL_MS = 10_000
# Drains every confirmation email the database says is due (see wake_on_commit).
CONFIRMATIONS_TASK = "mailer.send_confirmations"


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(settings))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": settings.queue_name,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        # Tasks are idempotent (the ledger decides what is left to do), so a
        # task whose worker died may safely run again.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "beat_schedule_filename": str(settings.instance_path / "celerybeat-schedule"),
        "beat_schedule": {
            # One fixed entry; the schedules themselves live in the database.
            "tick": {"task": "mailer.tick", "schedule": timedelta(seconds=settings.tick_seconds)},
        },
    }
    if settings.uses_embedded_broker:
        folder = settings.instance_path / "broker"
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    elif settings.broker_url.startswith(("redis://", "rediss://")):
        # Lane tasks are short (seconds); a lost one is re-found by the sweeper.
        config["broker_transport_options"] = {"visibility_timeout": 600}
    return config


def enqueue_on_commit(session: DbSession, name: str, *args: Any) -> None:
    """Publish task `name(*args)` once `session` commits; drop it on rollback."""
    session.info.setdefault(PENDING_KEY, []).append((name, args))


def wake_on_commit(session: DbSession, name: str) -> None:
    """Once `session` commits, make sure a `name()` task (one that drains rows
    the transaction wrote) is on its way; coalesced with any already pending."""
    session.info.setdefault(WAKE_KEY, set()).add(name)


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

    def __init__(self, celery_app: Celery, queue: str, redis_url: str = "") -> None:
        self.celery = celery_app
        self.queue = queue
        self.redis_url = redis_url
        self._redis: Any = None

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

    def wake(self, name: str) -> None:
        """Publish `name()` unless a wake is already pending. Without Redis (the
        embedded broker) every wake publishes; the task then finds little to do."""
        client = self._client()
        if client is not None:
            try:
                if not client.set(self._wake_key(name), b"1", nx=True, px=WAKE_TTL_MS):
                    return
            except Exception:
                log.warning("wake key for %s unavailable; publishing anyway", name, exc_info=True)
        self(name, ())

    def rearm(self, name: str) -> None:
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
