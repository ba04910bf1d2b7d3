#!/usr/bin/env python3
"""Automation step planning: what planning costs a confirmation, on PostgreSQL.

    .venv/bin/python bench/automations.py [--readers 5000]

Confirms `--readers` new readers through the API path (`subscribe(confirmed=True)`)
twice in fresh databases: once with no automation, once with two automations (a
welcome email plus two follow-ups, one of them limited to a topic). The difference
is the planning cost (one SELECT of the matching steps and one INSERT of the rows,
in the confirmation's transaction). Prints confirmations/s and the projected
capacity in new readers per hour.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import create_pg_database, drop_pg_database, write_result


def run(readers: int, with_automations: bool) -> float:
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from mailer import automations, create_app
    from mailer.extensions import db
    from mailer.models import AutomationDelivery, Topic
    from mailer.readers import subscribe

    name, url = create_pg_database()
    try:
        app = create_app(ratelimit=False, database_url=url, broker_url="memory://",
                         secret_key="bench", instance_path=Path("/tmp/mailer-bench-automations"))
        with app.app_context():
            upgrade()
            session = db.session
            session.add(Topic(slug="local", name="Local"))
            session.commit()
            if with_automations:
                step = {"subject": "Hi", "body_text": "{{ greeting }}\n\nWelcome."}
                automations.save_automation(session, {"name": "Welcome", "steps": [
                    {**step, "delay_minutes": 0}, {**step, "delay_minutes": 1440},
                    {**step, "delay_minutes": 4320}]}, "http://bench")
                automations.save_automation(session, {"name": "Local", "topics": ["local"],
                                                      "steps": [{**step, "delay_minutes": 60}]},
                                            "http://bench")
            app.extensions["dispatch"] = lambda *a, **k: None  # no broker in this bench
            app.extensions["dispatch"].wake = lambda *a, **k: None  # type: ignore[attr-defined]
            started = time.perf_counter()
            for n in range(readers):
                subscribe(session, email=f"r{n}@example.org", topics=["local"] if n % 2 else [],
                          confirmed=True, source="bench")
            elapsed = time.perf_counter() - started
            planned = session.scalar(select(func.count()).select_from(AutomationDelivery))
            print(f"  automations={'yes' if with_automations else 'no '}: {readers} confirmations "
                  f"in {elapsed:.2f}s = {readers / elapsed:.0f}/s, {planned} rows planned")
            db.session.remove()
            db.engine.dispose()
        return elapsed
    finally:
        drop_pg_database(name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=5000)
    args = parser.parse_args()
    base = run(args.readers, False)
    planned = run(args.readers, True)
    per_reader_ms = (planned - base) / args.readers * 1000
    capacity = args.readers / planned * 3600
    print(f"planning adds {per_reader_ms:.2f} ms per confirmation; "
          f"one process confirms and plans {capacity:,.0f} new readers per hour")
    write_result("automations", {"readers": args.readers, "seconds_without": base,
                                 "seconds_with": planned, "planning_ms_per_reader": per_reader_ms,
                                 "readers_per_hour_one_process": capacity})


if __name__ == "__main__":
    main()
