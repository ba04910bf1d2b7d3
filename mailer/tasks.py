"""Celery glue: the Celery app lives in the Flask app, tasks are sent by name.

`mailer` never imports `workers`. Code that wants work done calls
`enqueue_on_commit(name, *ids)`: the message is published only after the
surrounding transaction commits, so a worker can never look for a row that is
not there yet, and a rolled-back request publishes nothing.
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


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: DbSession) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if not pending or not has_app_context():
        return
    dispatch = current_app.extensions["dispatch"]
    for name, args in pending:
        dispatch(name, args)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: DbSession) -> None:
    session.info.pop(PENDING_KEY, None)


class CeleryDispatcher:
    """Sends tasks by name. A broker outage is logged, not raised: the rows are
    committed, and the beat sweeper re-enqueues work the broker never got."""

    def __init__(self, celery_app: Celery, queue: str) -> None:
        self.celery = celery_app
        self.queue = queue

    def __call__(self, name: str, args: tuple[Any, ...]) -> None:
        try:
            self.celery.send_task(name, args=list(args), queue=self.queue)
        except Exception:
            log.exception("could not enqueue %s%r; the sweeper will pick it up", name, args)


class RecordingDispatcher:
    """For unit tests: remembers what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, name: str, args: tuple[Any, ...]) -> None:
        self.sent.append((name, args))

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]
