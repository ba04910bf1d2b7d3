#!/usr/bin/env python3
"""Celery broker throughput: N tiny tasks end to end through a real worker process.

    python bench/broker.py [--tasks 1000] [--brokers filesystem,redis,sqlite]

Prints tasks/second per broker and writes bench/results/broker.json. Used to choose
the embedded default broker (see README, "Embedded broker").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"

BROKERS = {
    "filesystem": lambda tmp: "filesystem://",
    "redis": lambda tmp: "redis://127.0.0.1:6379/0",
    "sqlite": lambda tmp: f"sqla+sqlite:///{tmp}/broker.sqlite",
}


def run(name: str, tasks: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        done = Path(tmp) / "done"
        env = dict(os.environ, MAILER_INSTANCE_PATH=tmp, MAILER_BROKER_URL=BROKERS[name](tmp),
                   MAILER_QUEUE=f"bench-{os.getpid()}-{name}", BENCH_DONE_FILE=str(done),
                   PYTHONPATH=str(ROOT))
        sys.path.insert(0, str(ROOT))
        os.environ.update(env)
        from importlib import reload

        import bench.broker_app as broker_app

        reload(broker_app)
        if name == "sqlite":  # declare the queue once, before the worker starts
            with broker_app.app.connection_for_write() as conn:
                conn.default_channel.queue_declare(env["MAILER_QUEUE"])
        worker = subprocess.Popen(
            [str(BIN / "celery"), "-A", "bench.broker_app", "worker", "-c", "2",
             "--loglevel", "WARNING", "-Q", env["MAILER_QUEUE"], "--without-gossip",
             "--without-mingle"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

        def wait_done() -> bool:
            deadline = time.time() + 300
            while not done.exists() and time.time() < deadline:
                time.sleep(0.005)
            return done.exists()

        try:
            broker_app.noop.apply_async((0, 0), queue=env["MAILER_QUEUE"])  # warm-up
            if not wait_done():
                return {"broker": name, "error": "worker did not start"}
            done.unlink()
            started = time.perf_counter()
            with broker_app.app.producer_or_acquire() as producer:
                for i in range(tasks):
                    broker_app.noop.apply_async((i, tasks - 1), producer=producer,
                                                queue=env["MAILER_QUEUE"])
            published = time.perf_counter()
            finished = wait_done()
            consumed = time.perf_counter()
        finally:
            os.killpg(worker.pid, 15)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a prefork pool can hang in warm shutdown
                os.killpg(worker.pid, 9)
                worker.wait(timeout=30)
        if not finished:
            return {"broker": name, "error": "timed out"}
        return {
            "broker": name,
            "tasks": tasks,
            "publish_per_s": round(tasks / (published - started)),
            "end_to_end_per_s": round(tasks / (consumed - started)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--brokers", default="filesystem,redis,sqlite")
    args = parser.parse_args()
    results = [run(name, args.tasks) for name in args.brokers.split(",")]
    for r in results:
        print(json.dumps(r))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "broker.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
