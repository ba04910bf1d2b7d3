#!/usr/bin/env python3
"""A signup flood on the embedded default (SQLite + the file broker, no Redis).

    python bench/signup_flood.py [--signups 5000]

Posts N signups from rotating addresses (rate limits off, as a botnet would
spread them), then starts one worker (2 processes) and an edition at once, and
reports: broker message files left by the flood (the backlog), the time until
every confirmation email is out (drain), and the time until the new edition
leaves `compiling` (a send waiting behind the flood). Writes
bench/results/signup_flood.json. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import environment, start_worker  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def broker_files(instance: Path) -> int:
    return sum(1 for n in os.listdir(instance / "broker" / "queue") if n.endswith(".msg"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signups", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        settings = {"MAILER_INSTANCE_PATH": str(instance), "MAILER_SECRET_KEY": "bench",
                    "MAILER_API_TOKEN": "bench-token", "MAILER_SIGNUP_MIN_SECONDS": "0",
                    "MAILER_QUEUE": f"flood-{os.getpid()}", "MAILER_TICK_SECONDS": "5"}
        os.environ.update(settings)
        from flask_migrate import upgrade
        from sqlalchemy import func, select

        from mailer import create_app
        from mailer.extensions import db
        from mailer.models import Article, Digest, Edition, Reader, ReaderStatus, Topic, utcnow

        app = create_app(ratelimit=False)
        app.config["WTF_CSRF_ENABLED"] = False
        with app.app_context():
            upgrade()
            topic = Topic(slug="local", name="Local")
            db.session.add_all([
                topic,
                Article(url="https://news.example.org/a/1", title="Ferry", summary="s",
                        topics=[topic], published_at=utcnow()),
                Reader(email="loyal@example.org", email_key="loyal@example.org",
                       status=ReaderStatus.CONFIRMED, topics=[topic]),
            ])
            db.session.add(Digest(name="Daily", topics=[topic]))
            db.session.commit()

            client = app.test_client()
            started = time.monotonic()
            for n in range(args.signups):
                address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
                answer = client.post("/subscribe", data={"email": f"flood{n}@example.org"},
                                     environ_base={"REMOTE_ADDR": address})
                assert answer.status_code == 200, answer.status_code
            flood_seconds = time.monotonic() - started
            backlog = broker_files(instance)

            log_dir = Path(tmp) / "logs"
            log_dir.mkdir()
            worker = start_worker(environment(settings), log_dir)
            try:
                t0 = time.monotonic()
                answer = client.post("/api/v1/editions", json={"digest": "Daily"},
                                     headers={"Authorization": "Bearer bench-token"})
                assert answer.status_code == 202, answer.get_data(as_text=True)
                edition_id = answer.get_json()["id"]
                send_started = drained = None
                while time.monotonic() - t0 < 900 and (send_started is None or drained is None):
                    db.session.expire_all()
                    if send_started is None:
                        status = db.session.scalar(select(Edition.status).where(
                            Edition.id == edition_id))
                        if status != "compiling":
                            send_started = time.monotonic() - t0
                    if drained is None:
                        waiting = db.session.scalar(select(func.count()).select_from(Reader).where(
                            Reader.status == ReaderStatus.PENDING,
                            Reader.confirmation_mailed_at.is_(None)))
                        if waiting == 0:
                            drained = time.monotonic() - t0
                    db.session.commit()
                    time.sleep(0.2)
                outbox = len(list((instance / "outbox").glob("*.eml")))
            finally:
                worker.stop()
        result = {"signups": args.signups, "flood_seconds": round(flood_seconds, 1),
                  "signups_per_second": round(args.signups / flood_seconds),
                  "broker_backlog_files": backlog,
                  "drain_seconds": None if drained is None else round(drained, 1),
                  "new_send_started_after_seconds": None if send_started is None
                  else round(send_started, 2),
                  "emails_in_outbox": outbox}
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "signup_flood.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
