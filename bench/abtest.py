#!/usr/bin/env python3
"""Planning an A/B subject test against planning a plain edition, PostgreSQL.

    .venv/bin/python bench/abtest.py [--readers 200000] [--rounds 3]

Fills a fresh database with `--readers` confirmed readers of one topic and ten
articles, then, alternating, prepares a plain edition and an A/B edition (two
subjects, 20% sample) of the same digest, each from an empty ledger, and times
`prepare_edition` (compile, one INSERT ... SELECT, commit). For the A/B edition it
also times the winner's decision (figures, one UPDATE releasing the held 80%).
Prints the best of the rounds; writes bench/results/abtest.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import migrated_app, write_result

FILL = """
INSERT INTO topics (slug, name, created_at) VALUES ('news', 'News', now());
INSERT INTO readers (email, email_key, name, status, frequency, confirm_nonce, consent_at,
                     consent_source, consent_ip, created_at, confirmed_at)
SELECT 'r' || n || '@example.org', 'r' || n || '@example.org', '', 'confirmed', 'immediate',
       '', now(), 'bench', '', now(), now()
FROM generate_series(1, %(readers)s) AS n;
INSERT INTO reader_topics (reader_id, topic_id) SELECT r.id, 1 FROM readers r;
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from datetime import timedelta

    from sqlalchemy import text

    from mailer import editions
    from mailer.extensions import db
    from mailer.models import Article, Digest, SubjectTest, Topic, utcnow

    with migrated_app("abtest") as app:
        settings = app.extensions["mailer"].settings
        with db.engine.begin() as conn:
            for statement in FILL.replace("%(readers)s", str(int(args.readers))).split(";"):
                if statement.strip():
                    conn.execute(text(statement))
        topic = db.session.get(Topic, 1)
        for n in range(10):
            db.session.add(Article(url=f"https://news.example.org/{n}", title=f"Story {n}",
                                   summary="A summary.", topics=[topic],
                                   published_at=utcnow() - timedelta(minutes=n + 1)))
        db.session.add(Digest(name="Bench", topics=[topic]))
        db.session.commit()
        spec = editions.SubjectTestSpec(subjects=("First subject", "Second subject"))
        times: dict[str, list[float]] = {"plain": [], "ab": [], "decide": []}
        for _ in range(args.rounds):
            for kind in ("plain", "ab"):
                with db.engine.begin() as conn:  # an empty ledger for each run
                    conn.execute(text("TRUNCATE subject_tests, deliveries, edition_variant_articles,"
                                      " edition_variants, edition_links, editions CASCADE"))
                edition = editions.start_edition(
                    db.session, "Bench", subject_test=spec if kind == "ab" else None)
                t0 = time.perf_counter()
                planned = editions.prepare_edition(db.session, settings, edition.id)
                times[kind].append(time.perf_counter() - t0)
                assert planned == args.readers, planned
                if kind == "ab":
                    decide_at = db.session.get(SubjectTest, edition.id).decide_at
                    t0 = time.perf_counter()
                    editions.decide_subject_tests(db.session, settings, now=decide_at)
                    times["decide"].append(time.perf_counter() - t0)
                db.session.remove()
        best = {k: min(v) for k, v in times.items()}
        print(f"{args.readers:,} readers, best of {args.rounds}:")
        print(f"  prepare, plain edition     {best['plain']:7.2f} s")
        print(f"  prepare, A/B (20% sample)  {best['ab']:7.2f} s  "
              f"({best['ab'] / best['plain']:.2f}x)")
        print(f"  winner decision + release  {best['decide']:7.2f} s")
        db.session.remove()
        db.engine.dispose()
        write_result("abtest", {"readers": args.readers, "rounds": args.rounds,
                            "seconds": times, "best": best})


if __name__ == "__main__":
    main()
