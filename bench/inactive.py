#!/usr/bin/env python3
"""Honest engagement on a large table, PostgreSQL: the inactive-reader scan and the
open pixel's first-open lookup.

    .venv/bin/python bench/inactive.py [--readers 200000] [--opens 2000]

Fills a fresh database with `--readers` confirmed readers who joined a year ago,
three tracked digests sent to each a month ago, and a human open or click for two
readers in three (the rest are inactive) with set-based SQL, ANALYZEs, then times
one `scan_inactive` pass (it asks at most SCAN_LIMIT readers), a pass after the
grace period (pausing those), and `record_open` on a reader_events table of that
size (the plan of its lookup is printed).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import migrated_app, write_result

FILL = """
INSERT INTO readers (email, email_key, name, status, frequency, confirm_nonce, token_nonce,
                     consent_at, consent_source, consent_ip, created_at, confirmed_at)
SELECT 'r' || n || '@example.org', 'r' || n || '@example.org', '', 'confirmed', 'immediate', '',
       'n' || n, now(), 'bench', '', now() - interval '365 days', now() - interval '365 days'
FROM generate_series(1, %(readers)s) AS n;
INSERT INTO deliveries (edition_id, reader_id, status, attempts, claimed_by, sent_at, error, created_at)
SELECT e.id, r.id, 'sent', 1, '', now() - interval '30 days', '', now() - interval '30 days'
FROM readers r CROSS JOIN editions e;
INSERT INTO reader_events (reader_id, edition_id, kind, detail, note, created_at)
SELECT r.id, (SELECT min(id) FROM editions), CASE WHEN r.id % 3 = 1 THEN 'click' ELSE 'open' END,
       '{}', '', now() - interval '20 days'
FROM readers r WHERE r.id % 3 <> 0;
INSERT INTO reader_events (reader_id, edition_id, kind, detail, note, created_at)
SELECT r.id, (SELECT min(id) FROM editions), 'open-machine', '{"reason": "apple-mpp-agent"}', '',
       now() - interval '30 days'
FROM readers r WHERE r.id % 3 = 0;
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=200_000)
    parser.add_argument("--opens", type=int, default=2000)
    args = parser.parse_args()
    from sqlalchemy import text, update

    from mailer import automations
    from mailer.automations.reengage import SCAN_LIMIT
    from mailer.common import tokens
    from mailer.editions import record_open
    from mailer.extensions import db
    from mailer.models import AutomationDelivery, Digest, Edition, EditionLink, utcnow
    from mailer.runtime import runtime

    with migrated_app("inactive"):
        started = time.perf_counter()
        digest = Digest(name="Morning")
        db.session.add(digest)
        db.session.flush()
        for n in range(3):
            edition = Edition(digest_id=digest.id, slot=f"bench-{n}", status="done",
                              created_at=utcnow() - timedelta(days=30))
            db.session.add(edition)
            db.session.flush()
            db.session.add(EditionLink(edition_id=edition.id, url=f"https://news.example.org/{n}"))
        db.session.commit()
        with db.engine.begin() as conn:
            for statement in FILL.replace("%(readers)s", str(int(args.readers))).split(";"):
                if statement.strip():
                    conn.execute(text(statement))
        fill = time.perf_counter() - started
        print(f"filled {args.readers:,} readers, {3 * args.readers:,} deliveries in {fill:.0f}s")
        settings = replace(runtime().settings, inactive_months=3)
        now = utcnow()
        t0 = time.perf_counter()
        asked = automations.scan_inactive(db.session, settings, now=now)
        scan = time.perf_counter() - t0
        print(f"  scan: asked {asked.asked:,} readers in {scan * 1000:.0f} ms "
              f"(at most {SCAN_LIMIT:,} per pass)")
        db.session.execute(update(AutomationDelivery).values(status="sent", sent_at=now))
        db.session.commit()
        t0 = time.perf_counter()
        paused = automations.scan_inactive(db.session, settings, now=now + timedelta(days=15))
        pause = time.perf_counter() - t0
        print(f"  scan after the grace period: paused {paused.paused:,}, asked "
              f"{paused.asked:,} more in {pause * 1000:.0f} ms")

        # The pixel: a reader's earlier open of an edition, on a table of this size.
        edition_id = db.session.scalar(text("SELECT min(id) FROM editions"))
        plan = db.session.execute(text(
            "EXPLAIN SELECT EXISTS (SELECT 1 FROM reader_events WHERE edition_id = :e "
            "AND reader_id = :r AND kind = 'open')"), {"e": edition_id, "r": 2}).scalars().all()
        print("  first-open lookup plan:\n    " + "\n    ".join(plan))
        secret = runtime().settings.secret_key
        agent = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}
        later = now + timedelta(minutes=30)
        t0 = time.perf_counter()
        for n in range(args.opens):
            reader_id = 1 + (n * 7919) % args.readers
            token = f"{edition_id}.{tokens.track_value(secret, edition_id, reader_id, f'n{reader_id}')}"
            record_open(db.session, secret, token, method="GET", headers=agent, now=later,
                        remote_addr="203.0.113.5")
        per_open = (time.perf_counter() - t0) / args.opens
        print(f"  record_open: {per_open * 1e6:.0f} us per pixel hit ({args.opens:,} hits)")
        db.session.remove()
        db.engine.dispose()
        write_result("inactive", {"readers": args.readers, "fill_seconds": fill,
                              "scan_ask_seconds": scan, "asked": asked.asked,
                              "scan_pause_seconds": pause, "paused": paused.paused,
                              "record_open_seconds": per_open, "first_open_plan": plan})


if __name__ == "__main__":
    main()
