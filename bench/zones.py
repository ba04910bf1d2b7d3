#!/usr/bin/env python3
"""Reader-local sending: what holding rows until each reader's hour costs, on PostgreSQL.

    .venv/bin/python bench/zones.py [--readers 200000] [--rounds 2]

Fills `--readers` confirmed readers spread over 40 time zones (one in ten without a
zone), then prepares the same edition alternately as an ordinary edition and as a
reader-local one ("daily 07:00 reader-local"), deleting the ledger in between. The
difference is the zone step (distinct zones, one temporary table, one UPDATE ... FROM).
Also times a tick while every row still waits (nothing due) and the tick that
releases the largest zone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import migrated_app, write_result

ZONES = ["", "Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Madrid", "Europe/Rome",
         "Europe/Warsaw", "Europe/Athens", "Europe/Helsinki", "Europe/Lisbon", "Europe/Dublin",
         "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
         "America/Toronto", "America/Sao_Paulo", "America/Mexico_City", "America/Bogota",
         "America/Anchorage", "Pacific/Honolulu", "Pacific/Pago_Pago", "Pacific/Kiritimati",
         "Pacific/Auckland", "Australia/Sydney", "Australia/Perth", "Australia/Adelaide",
         "Asia/Tokyo", "Asia/Seoul", "Asia/Shanghai", "Asia/Singapore", "Asia/Kolkata",
         "Asia/Kathmandu", "Asia/Dubai", "Asia/Tehran", "Asia/Jakarta", "Africa/Lagos",
         "Africa/Nairobi", "Africa/Johannesburg", "Atlantic/Reykjavik"]

FILL = """
INSERT INTO readers (email, email_key, name, status, frequency, confirm_nonce, consent_at,
                     consent_source, consent_ip, created_at, confirmed_at, timezone)
SELECT 'r' || n || '@example.org', 'r' || n || '@example.org', '', 'confirmed', 'immediate',
       '', now(), 'bench', '', now(), now(), (%(zones)s)[1 + n %% %(count)s]
FROM generate_series(1, %(readers)s) AS n
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from sqlalchemy import delete, text, update

    from mailer import delivery, editions
    from mailer.delivery.waiting import RELEASE_CHUNK, release_waiting
    from mailer.extensions import db
    from mailer.models import Article, Delivery, Digest, Edition, utcnow
    from mailer.runtime import runtime

    with migrated_app("zones") as app:
        app.extensions["dispatch"] = lambda *a, **k: None  # no broker in this bench
        app.extensions["dispatch"].wake = lambda *a, **k: None  # type: ignore[attr-defined]
        session = db.session
        zones = "ARRAY[" + ",".join(f"'{z}'" for z in ZONES) + "]"
        started = time.perf_counter()
        session.execute(text(FILL % {
            "zones": zones, "count": len(ZONES), "readers": int(args.readers)}))
        session.commit()
        print(f"filled {args.readers:,} readers in {time.perf_counter() - started:.0f}s")
        digest = Digest(name="Morning", timezone="Europe/London")
        session.add(digest)
        session.add(Article(url="https://news.example.org/a", title="A", summary="",
                            published_at=utcnow() - timedelta(minutes=5)))
        session.commit()
        session.execute(text("ANALYZE"))
        session.commit()
        timings: dict[str, list[float]] = {"plain": [], "local": []}
        for _ in range(args.rounds):
            for kind in ("plain", "local"):
                session.execute(delete(Delivery))
                session.execute(delete(Edition))
                session.commit()
                edition = editions.start_edition(
                    session, digest.id, local_send="2027-03-08T07:00" if kind == "local" else "")
                t0 = time.perf_counter()
                planned = editions.prepare_edition(session, runtime().settings, edition.id)
                timings[kind].append(time.perf_counter() - t0)
                print(f"  {kind:5s}: prepared {planned:,} rows in {timings[kind][-1]:.2f}s")
        settings = runtime().settings
        # The last edition is reader-local: every row waits.
        t0 = time.perf_counter()
        delivery.sweep(session, settings, now=utcnow())
        idle_tick = time.perf_counter() - t0
        # Release the largest zone (London and readers without a zone: 07:00Z).
        session.execute(update(Edition).values(status="paused"))  # no lanes in this bench
        session.commit()
        t0 = time.perf_counter()
        n_released, first_chunk = 0, 0.0
        while True:  # as the tick does: committed chunks, lanes woken after the first
            released = sum(release_waiting(session, datetime(2027, 3, 8, 7, 0, 1, tzinfo=UTC))
                           .values())
            session.commit()
            first_chunk = first_chunk or time.perf_counter() - t0
            n_released += released
            if released < RELEASE_CHUNK:
                break
        release = time.perf_counter() - t0
        db.session.remove()
        db.engine.dispose()
        plain, local = statistics.median(timings["plain"]), statistics.median(timings["local"])
        print(f"prepare median: plain {plain:.2f}s, reader-local {local:.2f}s "
          f"(+{local - plain:.2f}s for {args.readers:,} readers in {len(ZONES)} zones)")
        print(f"tick with every row waiting: {idle_tick * 1000:.0f} ms; "
          f"releasing the {n_released:,} rows of the zones due by 07:00Z: {release * 1000:.0f} ms "
          f"(first chunk of {RELEASE_CHUNK:,} sendable after {first_chunk * 1000:.0f} ms)")
        write_result("zones", {"readers": args.readers, "zones": len(ZONES),
                           "prepare_plain_s": timings["plain"],
                           "prepare_local_s": timings["local"],
                           "idle_tick_ms": idle_tick * 1000, "released": n_released,
                           "release_ms": release * 1000,
                           "first_chunk_ms": first_chunk * 1000})


if __name__ == "__main__":
    main()
