#!/usr/bin/env python3
"""Audience counts on a large reader table, PostgreSQL.

    .venv/bin/python bench/segments.py [--readers 1000000]

Fills a fresh database with `--readers` confirmed readers (topics, frequencies,
sources and signup dates spread out, ~1.5 topics each, and opens/clicks for about a
third of them in the last 90 days) with set-based SQL, ANALYZEs, then times
`count_readers` for a handful of typical audiences (best of 3 runs each).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import migrated_app, write_result

AUDIENCES = {
    "topic any_of": {"rules": [{"field": "topics", "op": "any_of", "value": ["sport"]}]},
    "opened within 30 days": {"rules": [{"field": "opened", "op": "within_days", "value": 30}]},
    "topic + frequency + opened (all)": {"rules": [
        {"field": "topics", "op": "any_of", "value": ["sport", "arts"]},
        {"field": "frequency", "op": "is", "value": "daily"},
        {"field": "opened", "op": "within_days", "value": 30}]},
    "source or clicked (any)": {"match": "any", "rules": [
        {"field": "source", "op": "starts_with", "value": "form:sidebar"},
        {"field": "clicked", "op": "within_days", "value": 14}]},
    "signed up in the last year, not opened in 60 days": {"rules": [
        {"field": "signed_up", "op": "within_days", "value": 365},
        {"field": "opened", "op": "not_within_days", "value": 60}]},
}

FILL = """
INSERT INTO topics (slug, name, created_at) VALUES
  ('sport', 'Sport', now()), ('arts', 'Arts', now()), ('local', 'Local', now()),
  ('economy', 'Economy', now()), ('science', 'Science', now());
INSERT INTO readers (email, email_key, name, status, frequency, confirm_nonce, consent_at,
                     consent_source, consent_ip, created_at, confirmed_at)
SELECT 'r' || n || '@example.org', 'r' || n || '@example.org', '', 'confirmed',
       (ARRAY['immediate', 'daily', 'weekly', 'paused'])[1 + n % 4], '', now(),
       (ARRAY['form:homepage', 'form:sidebar', 'import', 'api'])[1 + (n / 7) % 4], '',
       now() - (n % 1000) * interval '1 day', now() - (n % 1000) * interval '1 day'
FROM generate_series(1, %(readers)s) AS n;
INSERT INTO reader_topics (reader_id, topic_id)
SELECT r.id, t.id FROM readers r JOIN topics t ON t.id = 1 + r.id % 5
UNION SELECT r.id, t.id FROM readers r JOIN topics t ON t.id = 1 + (r.id / 3) % 5 WHERE r.id % 2 = 0;
INSERT INTO reader_events (reader_id, kind, detail, note, created_at)
SELECT r.id, CASE WHEN r.id % 4 = 0 THEN 'click' ELSE 'open' END, '{}', '',
       now() - (r.id % 90) * interval '1 day'
FROM readers r WHERE r.id % 3 = 0;
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=1_000_000)
    args = parser.parse_args()
    from sqlalchemy import text

    from mailer import segments
    from mailer.extensions import db

    with migrated_app("segments"):
        started = time.perf_counter()
        with db.engine.begin() as conn:
            for statement in FILL.replace("%(readers)s", str(int(args.readers))).split(";"):
                if statement.strip():
                    conn.execute(text(statement))
        print(f"filled {args.readers:,} readers in {time.perf_counter() - started:.0f}s")
        results = {}
        for label, raw in AUDIENCES.items():
            definition = segments.checked_definition(db.session, raw)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                count = segments.count_readers(db.session, definition)
                times.append(time.perf_counter() - t0)
                db.session.rollback()
            best = min(times)
            results[label] = {"count": count, "seconds": best}
            print(f"  {label:52s} {count:>9,} readers  {best * 1000:7.0f} ms")
        db.session.remove()
        db.engine.dispose()
        write_result("segments", {"readers": args.readers, "audiences": results})


if __name__ == "__main__":
    main()
