"""Celery glue in the Flask app (Flask's `celery_init_app` pattern): the Celery app
lives in `app.extensions["celery"]` and every task runs inside an app context."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery, Task
from flask import Flask

from mailer import broker_fs
from mailer.config import Settings
from mailer.jobs import TaskName


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
            "tick": {"task": str(TaskName.TICK), "schedule": timedelta(seconds=settings.tick_seconds)},
        },
    }
    if settings.bounce_mailbox:
        config["beat_schedule"]["poll-bounces"] = {
            "task": str(TaskName.POLL_BOUNCES),
            "schedule": timedelta(seconds=settings.bounce_poll_seconds),
        }
    if settings.uses_embedded_broker:
        # kombu's filesystem transport with atomic writes and claims (broker_fs.py).
        config["broker_url"] = f"{broker_fs.ALIAS}://"
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
