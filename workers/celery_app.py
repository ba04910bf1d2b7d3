"""Entry point for `celery -A workers.celery_app worker|beat`."""

from mailer import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]

import workers.tasks  # noqa: E402,F401  (registers the tasks with this app)
