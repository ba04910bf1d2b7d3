"""A bare Celery app for bench/broker.py: one no-op task, configured like mailer's."""

from __future__ import annotations

import os
import time

from celery import Celery

from mailer.celery_setup import celery_config
from mailer.config import load_settings

settings = load_settings()
app = Celery("bench")
app.config_from_object(celery_config(settings))
app.conf.beat_schedule = {}
DONE_FILE = os.environ.get("BENCH_DONE_FILE", "/tmp/bench-broker-done")


@app.task(name="bench.noop", ignore_result=True)
def noop(i: int, last: int) -> None:
    if i == last:
        with open(DONE_FILE, "w") as fh:
            fh.write(str(time.time()))
