"""Console latency with 1,000,000 readers and 1,000 editions on PostgreSQL.

Builds its own database with set-based INSERT ... SELECT generate_series, runs the
real migrations first (so the console's indexes are the ones under test), then
times dashboard, reports, reader search and reader history through the Flask app
(test client, logged in, full request: routing, session, queries, templates).

    .venv/bin/python bench/console/run.py [--readers 1000000] [--editions 1000]

Prints a table and writes bench/results/console.json. Target: < 300 ms.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.common import create_pg_database, drop_pg_database  # noqa: E402

TARGET_MS = 300.0


def sql_load(dsn: str, readers: int, editions: int, big_edition: int) -> dict[str, float]:
    """Fill the tables set-based; returns seconds per step."""
    steps: dict[str, float] = {}

    def step(name: str, sql: str, **params: object) -> None:
        started = time.perf_counter()
        for key, value in params.items():  # integers only: inlined, no driver placeholders
            sql = sql.replace(f"%({key})s", str(int(value)))  # type: ignore[call-overload]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[call-overload]
        steps[name] = round(time.perf_counter() - started, 2)
        print(f"  {name}: {steps[name]} s", flush=True)

    step("topics", """
        INSERT INTO topics (slug, name, created_at)
        SELECT 'topic-' || n, 'Topic ' || n, now() FROM generate_series(1, 20) n""")
    step("readers", """
        INSERT INTO readers (email, email_key, name, status, frequency, confirm_nonce, consent_at,
                             consent_source, consent_ip, created_at, confirmed_at)
        SELECT 'reader' || n || '@example' || (n % 50) || '.org',
               'reader' || n || '@example' || (n % 50) || '.org',
               'Reader ' || n,
               CASE WHEN n % 100 < 85 THEN 'confirmed' WHEN n % 100 < 90 THEN 'pending'
                    WHEN n % 100 < 98 THEN 'unsubscribed' ELSE 'bounced' END,
               'immediate', '', now() - make_interval(secs => (n % 31536000)),
               'bench', '', now() - make_interval(secs => (n * 31.536)::int % 31536000),
               now() - make_interval(secs => (n % 31536000))
        FROM generate_series(1, %(readers)s) n""", readers=readers)
    step("reader_topics", """
        INSERT INTO reader_topics (reader_id, topic_id)
        SELECT r.id, t.id FROM readers r JOIN topics t
          ON t.id IN (1 + r.id % 20, 1 + (r.id / 20) % 20)""")
    step("digests", """
        INSERT INTO digests (name, subject, template, schedule, timezone, max_articles, approval,
                             active, created_at)
        SELECT 'Digest ' || n, '', 'digest', 'daily 07:00', 'UTC', 10, 'auto', true, now()
        FROM generate_series(1, 5) n""")
    step("editions", """
        INSERT INTO editions (digest_id, slot, status, subject, error, planned, article_ids, test_only,
                              created_by, created_at, started_at, finished_at)
        SELECT 1 + n % 5, 'bench-' || n, 'done', 'Edition ' || n, '', 1000, '[]', false, 'bench',
               now() - make_interval(hours => %(editions)s - n),
               now() - make_interval(hours => %(editions)s - n),
               now() - make_interval(hours => %(editions)s - n) + interval '10 minutes'
        FROM generate_series(1, %(editions)s) n""", editions=editions)
    step("deliveries (1,000 per edition)", """
        INSERT INTO deliveries (edition_id, reader_id, status, attempts, claimed_by, error, created_at,
                                sent_at)
        SELECT e.id, 1 + ((e.id * 7919 + k * 997) % %(readers)s),
               CASE WHEN k % 200 = 0 THEN 'failed' ELSE 'sent' END, 1, '', '', e.created_at,
               e.created_at + make_interval(secs => k % 600)
        FROM editions e, generate_series(1, 1000) k
        WHERE e.id < %(big)s
        ON CONFLICT DO NOTHING""", readers=readers, big=big_edition)
    step("deliveries (latest edition to every confirmed reader)", """
        INSERT INTO deliveries (edition_id, reader_id, status, attempts, claimed_by, error, created_at,
                                sent_at)
        SELECT %(big)s, r.id, 'sent', 1, '', '', now() - interval '1 hour',
               now() - interval '1 hour' + make_interval(secs => r.id % 900)
        FROM readers r WHERE r.status = 'confirmed'""", big=big_edition)
    step("editions planned", """
        UPDATE editions e SET planned = d.n FROM (
          SELECT edition_id, count(*) n FROM deliveries GROUP BY edition_id) d
        WHERE d.edition_id = e.id""")
    step("events (opens, clicks, unsubscribes)", """
        INSERT INTO reader_events (reader_id, edition_id, kind, detail, note, created_at)
        SELECT d.reader_id, d.edition_id,
               CASE WHEN d.id % 40 = 0 THEN 'click' WHEN d.id % 500 = 1 THEN 'unsubscribed'
                    ELSE 'open' END,
               '{}', '', d.sent_at + interval '20 minutes'
        FROM deliveries d WHERE d.id % 4 = 0 OR d.id % 500 = 1""")
    # Steady state: autovacuum would have run after a load like this (index-only scans
    # need the visibility map it sets).
    step("vacuum analyze", "VACUUM ANALYZE")
    return steps


def timed(client, path: str, runs: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    client.get(path)  # first view: templates compiled, finished editions' counts stored
    first = round((time.perf_counter() - started) * 1000, 1)
    samples = []
    status = 0
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    samples.sort()
    return {"path": path, "status": status, "runs": runs, "first_ms": first,
            "p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 1),
            "max_ms": round(samples[-1], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--editions", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    name, url = create_pg_database("mailer_bench_console")
    dsn = f"host=127.0.0.1 user=postgres dbname={name}"
    try:
        from flask_migrate import upgrade

        from mailer import create_app
        from mailer.console.editors import create_editor
        from mailer.extensions import db

        instance = Path(tempfile.mkdtemp(prefix="bench-console-"))
        app = create_app(instance_path=instance, database_url=url, broker_url="memory://",
                         secret_key="bench", ratelimit=False)
        app.config["WTF_CSRF_ENABLED"] = False
        with app.app_context():
            upgrade()
        print(f"loading {args.readers:,} readers and {args.editions:,} editions into {name}", flush=True)
        started = time.perf_counter()
        steps = sql_load(dsn, args.readers, args.editions, big_edition=args.editions)
        load_seconds = round(time.perf_counter() - started, 1)
        with psycopg.connect(dsn) as conn:
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("readers", "reader_topics", "editions", "deliveries", "reader_events")}
        print("rows:", counts, flush=True)

        with app.app_context():
            create_editor(db.session, "bench@example.org", "bench password 123", "admin")
            client = app.test_client()
            r = client.post("/console/login", data={"email": "bench@example.org",
                                                    "password": "bench password 123"})
            assert r.status_code == 302, r.status_code
            reader_id = args.readers // 2
            paths = {
                "dashboard": "/console/",
                "reader search: email prefix": "/console/readers?q=reader12345",
                "reader search: short prefix": "/console/readers?q=reader9",
                "reader search: exact address":
                    f"/console/readers?q=reader{reader_id}%40example{reader_id % 50}.org",
                "reader search: status filter": "/console/readers?status=bounced",
                "reader search: topic filter": "/console/readers?topic=topic-7",
                "reader search: prefix+status+topic":
                    "/console/readers?q=reader4&status=confirmed&topic=topic-5",
                "reader search: no match": "/console/readers?q=nobody",
                "reader history": f"/console/readers/{reader_id}",
                "editions list": "/console/editions",
                "edition page (1M deliveries)": f"/console/editions/{args.editions}",
                "progress.json (1M deliveries)": f"/console/editions/{args.editions}/progress.json",
                "reports (30 days)": "/console/reports",
            }
            results = {}
            for label, path in paths.items():
                results[label] = timed(client, path, args.runs)
                row = results[label]
                flag = "ok" if row["p50_ms"] < TARGET_MS else "SLOW"  # type: ignore[operator]
                print(f"  {label:<38} p50 {row['p50_ms']:>7} ms  p95 {row['p95_ms']:>7} ms  "
                      f"max {row['max_ms']:>7} ms  first {row['first_ms']:>7} ms  [{row['status']}] {flag}",
                      flush=True)
            db.session.remove()
            db.engine.dispose()
        out = {
            "benchmark": "console",
            "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
            "readers": args.readers, "editions": args.editions, "rows": counts,
            "load_seconds": load_seconds, "load_steps": steps, "target_ms": TARGET_MS,
            "results": results,
        }
        results_dir = ROOT / "bench" / "results"
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / "console.json").write_text(json.dumps(out, indent=2))
        print(f"wrote {results_dir / 'console.json'}")
        slow = [k for k, v in results.items() if v["p50_ms"] >= TARGET_MS]  # type: ignore[operator]
        print("all under target" if not slow else f"over {TARGET_MS} ms: {', '.join(slow)}")
        return 0
    finally:
        if not args.keep:
            drop_pg_database(name)
        else:
            print(f"kept database {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
