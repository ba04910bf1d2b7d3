"""Where a send lane's CPU goes: one lane run in this process under cProfile
(CPU time, not wall time), against PostgreSQL and a local SMTP sink.

    .venv/bin/python bench/profile_lane.py --readers 5000

Prints the top functions by own and cumulative CPU time and CPU µs per message.
Creates and drops its own PostgreSQL database.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SmtpSink, create_pg_database, drop_pg_database, write_result
from bench.send import insert_readers, make_content


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=5000)
    parser.add_argument("--top", type=int, default=30)
    opts = parser.parse_args()
    sink = SmtpSink.start()
    dbname, url = create_pg_database("mailer_prof")
    try:
        os.environ.update({
            "MAILER_INSTANCE_PATH": tempfile.mkdtemp(prefix="mailer-prof-"),
            "MAILER_DATABASE_URL": url, "MAILER_BROKER_URL": "memory://",
            "MAILER_SMTP_URL": f"smtp://127.0.0.1:{sink.port}", "MAILER_SECRET_KEY": "prof",
            "MAILER_FROM": "Bench News <news@bench.test>",
            "MAILER_BASE_URL": "https://news.bench.test",
        })
        from flask_migrate import upgrade

        from mailer import create_app, delivery, editions
        from mailer.extensions import db
        from mailer.jobs import RecordingDispatcher
        from mailer.runtime import runtime

        app = create_app(ratelimit=False)
        with app.app_context():
            upgrade()
        insert_readers(dbname, opts.readers)
        digest = make_content(app, 10)
        with app.app_context():
            app.extensions["dispatch"] = RecordingDispatcher()
            rt = runtime()
            edition = editions.start_edition(db.session, digest)
            editions.prepare_edition(db.session, rt.settings, edition.id)
            profiler = cProfile.Profile(time.process_time)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            profiler.enable()
            report = delivery.run_lane(
                db.session, edition.id, settings=rt.settings, sender=rt.sender(),
                tokens=rt.tokens, skeletons=rt.skeletons(), limiter=rt.limiter(),
                budget_seconds=3600)
            profiler.disable()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(opts.top)
        stats.sort_stats("cumulative").print_stats(opts.top)
        print(out.getvalue())
        per_msg = cpu / max(report.sent, 1) * 1e6
        print(f"one lane, one process: {report.sent} sent in {wall:.2f} s = "
              f"{report.sent / wall:,.0f} msg/s; CPU {per_msg:,.0f} µs per message")
        write_result("profile_lane", {"sent": report.sent, "wall_seconds": round(wall, 3),
                                      "cpu_us_per_message": round(per_msg, 1),
                                      "messages_per_second": round(report.sent / wall, 1)})
    finally:
        sink.stop()
        drop_pg_database(dbname)


if __name__ == "__main__":
    main()
