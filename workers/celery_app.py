"""Entry point for `celery -A workers.celery_app worker|beat`."""

from typing import Any

from celery.signals import worker_init, worker_shutting_down

from mailer import create_app
from workers import shutdown

flask_app = create_app()
celery = flask_app.extensions["celery"]
_run_folder = flask_app.extensions["mailer"].settings.instance_path / "run"


@worker_init.connect
def _fresh_start(**_: Any) -> None:
    shutdown.clear(_run_folder)


@worker_shutting_down.connect
def _tell_lanes(**_: Any) -> None:
    shutdown.request(_run_folder)


import workers.tasks  # noqa: E402,F401  (registers the tasks with this app)
