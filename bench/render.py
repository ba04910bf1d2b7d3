"""bench/render: compile and fill costs of per-reader digests.

Prints figures and writes bench/results/render.json:
- compile time of one edition (Jinja + MJML) with 10 and 50 article cards;
- fill time per reader (the compiled HTML and text with one reader's values);
- for N readers (default 100,000) spread over 20 topics: the real planner
  (`prepare_edition`) on a scratch database, the number of distinct article
  selections (variants) and of MJML compiles, and the total render time =
  compiles/assembly of every selection + one fill per reader. For comparison it
  also times one full compile per selection (what a compile per variant costs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def median_seconds(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def sample_context(n: int) -> dict:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return {
        "digest": {"name": "Morning Briefing", "subject": ""},
        "edition": {"id": 1, "date": now},
        "articles": [
            {"id": i, "url": f"https://news.example.org/2026/11/story-{i}",
             "title": f"Council approves harbour plan, part {i}",
             "author": "Jane Reporter", "summary": "The council voted 7 to 4 for the new harbour "
             "plan after a long debate about costs, ferries and the old warehouses. " * 2,
             "image_url": f"https://img.example.org/{i}.jpg", "published_at": now,
             "topics": ["Local"]}
            for i in range(n)
        ],
        "base_url": "https://news.example.org",
        "archive_url": "https://news.example.org/archive/1",
    }


def reader_values(n: int) -> dict[str, str]:
    return {"name": f"Reader {n}", "email": f"reader{n}@example.org", "greeting": f"Hello Reader {n},",
            "unsubscribe_url": f"https://news.example.org/unsubscribe/tok{n:08d}.abcdefghijkl",
            "preferences_url": f"https://news.example.org/preferences/tok{n:08d}.abcdefghijkl"}


def bench_compile(repeat: int) -> dict:
    from mjml import mjml2html

    from mailer.mail.rendering import NEUTRAL_PUBLICATION, _html_env, _ReaderPlaceholders, compile_email

    out = {}
    for n in (10, 50):
        ctx = sample_context(n)
        compile_email("digest", ctx)  # warm Jinja's template cache
        source = _html_env.get_template("digest/body.mjml").render(
            {"publication": NEUTRAL_PUBLICATION, **ctx, "reader": _ReaderPlaceholders()})
        out[f"compile_ms_{n}_articles"] = round(median_seconds(lambda c=ctx: compile_email("digest", c),
                                                               repeat) * 1000, 3)
        out[f"mjml_only_ms_{n}_articles"] = round(median_seconds(lambda s=source: mjml2html(s), repeat)
                                                  * 1000, 3)
        out[f"html_kb_{n}_articles"] = round(len(compile_email("digest", ctx).html.encode()) / 1024, 1)
    return out


def bench_fill(readers: int) -> dict:
    from mailer.mail.rendering import FillTemplate, compile_email, escape_values

    compiled = compile_email("digest", sample_context(10))
    html_t, text_t = FillTemplate(compiled.html), FillTemplate(compiled.text)
    values = [reader_values(n) for n in range(readers)]
    start = time.perf_counter()
    for v in values:
        html_t.fill(escape_values(v))
        text_t.fill(v)
    per = (time.perf_counter() - start) / readers
    return {"fill_us_per_reader": round(per * 1e6, 2), "fill_readers": readers}


def bench_plan(readers: int, topics: int, articles: int, database_url: str | None, seed: int) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import insert, select, update

    from mailer import create_app, editions
    from mailer.editions import compile as edition_compile
    from mailer.extensions import db
    from mailer.mail.rendering import FillTemplate, escape_values
    from mailer.models import (
        Article,
        Delivery,
        Digest,
        Edition,
        EditionVariant,
        Reader,
        Topic,
        article_topics,
        digest_topics,
        reader_topics,
        utcnow,
    )

    scratch = tempfile.mkdtemp(prefix="bench-render-")
    url = database_url or f"sqlite:///{scratch}/bench.db"
    pg_name = None
    if database_url == "postgres":
        sys.path.insert(0, str(ROOT))
        from tests.support import services

        url = services.create_pg_database()
        pg_name = url
    app = create_app(testing=True, ratelimit=False, instance_path=scratch, database_url=url,
                     broker_url="memory://", smtp_url="", secret_key="bench", base_url="https://news.example.org")
    rng = random.Random(seed)
    try:
        with app.app_context():
            upgrade()
            s = db.session
            now = utcnow()
            s.execute(insert(Topic), [{"slug": f"topic-{i}", "name": f"Topic {i}", "created_at": now}
                                      for i in range(topics)])
            topic_ids = list(s.scalars(select(Topic.id)))
            s.execute(insert(Article), [{
                "url": f"https://news.example.org/a/{i}", "title": f"Story {i} about topic {i % topics}",
                "author": "Desk", "summary": "A summary of the story in two sentences. " * 3, "body_html": "",
                "image_url": "", "published_at": now - timedelta(minutes=5 + i), "created_at": now,
                "updated_at": now} for i in range(articles)])
            article_ids = list(s.scalars(select(Article.id).order_by(Article.id)))
            s.execute(insert(article_topics), [{"article_id": a, "topic_id": topic_ids[i % topics]}
                                               for i, a in enumerate(article_ids)])
            # Topic popularity is skewed (Zipf-like); readers pick 0-3 topics.
            weights = [1 / (rank + 1) for rank in range(topics)]
            rows, links = [], []
            for n in range(readers):
                rows.append({"email": f"r{n}@example.org", "email_key": f"r{n}@example.org", "name": f"R {n}",
                             "status": "confirmed", "frequency": "immediate", "confirm_nonce": "",
                             "consent_source": "bench", "consent_ip": "", "created_at": now})
            s.execute(insert(Reader), rows)
            reader_ids = list(s.scalars(select(Reader.id).order_by(Reader.id)))
            for rid in reader_ids:
                k = rng.choices((0, 1, 2, 3), weights=(1, 4, 3, 2))[0]
                for tid in set(rng.choices(topic_ids, weights=weights, k=k)):
                    links.append({"reader_id": rid, "topic_id": tid})
            s.execute(insert(reader_topics), links)
            s.execute(insert(Digest), [{"name": "Bench", "subject": "", "template": "digest", "schedule": "",
                                        "timezone": "UTC", "max_articles": 10, "approval": "auto",
                                        "active": True, "created_at": now}])
            digest_id = s.scalar(select(Digest.id))
            s.execute(insert(digest_topics), [{"digest_id": digest_id, "topic_id": t} for t in topic_ids])
            s.commit()

            settings = app.extensions["mailer"].settings
            edition = editions.start_edition(s, digest_id)
            start = time.perf_counter()
            planned = editions.prepare_edition(s, settings, edition.id)
            plan_seconds = time.perf_counter() - start

            variants = s.scalars(select(EditionVariant).where(EditionVariant.edition_id == edition.id)).all()
            edition = s.get(Edition, edition.id)
            selections = [list(v.article_ids) for v in variants]
            union = sorted({a for sel in selections for a in sel})
            # Time the rendering the planner did: one MJML compile of every card
            # (CardDeck), then each distinct selection assembled from its cards.
            t0 = time.perf_counter()
            compiler = edition_compile.SelectionCompiler(s, settings, edition, union)
            deck_seconds = time.perf_counter() - t0
            for sel in selections:
                compiler.compile(sel)
            compile_seconds = time.perf_counter() - t0
            mjml_compiles = compiler.mjml_compiles
            # For comparison: one full Jinja + MJML compile per distinct selection.
            t0 = time.perf_counter()
            for sel in selections:
                edition_compile.compile_selection(s, settings, edition, sel)
            reference_seconds = time.perf_counter() - t0
            templates = {v.id: (FillTemplate(v.html), FillTemplate(v.text)) for v in variants}
            deliveries = s.execute(select(Delivery.reader_id, Delivery.variant_id)
                                   .where(Delivery.edition_id == edition.id)).all()
            t0 = time.perf_counter()
            for reader_id, variant_id in deliveries:
                html_t, text_t = templates[variant_id]
                values = reader_values(reader_id)
                html_t.fill(escape_values(values))
                text_t.fill(values)
            fill_seconds = time.perf_counter() - t0
            backend = s.get_bind().dialect.name

            # A second edition an hour later, with history: everyone received the
            # first one, 20 new articles arrived; planning now also excludes what
            # each reader already got and starts from their last edition.
            s.execute(update(Delivery).where(Delivery.edition_id == edition.id).values(status="sent"))
            s.execute(update(Edition).where(Edition.id == edition.id)
                      .values(status="done", created_at=now - timedelta(hours=1)))
            s.execute(insert(Article), [{
                "url": f"https://news.example.org/b/{i}", "title": f"Later story {i}", "author": "Desk",
                "summary": "Another summary. " * 3, "body_html": "", "image_url": "",
                "published_at": now - timedelta(minutes=1 + i / 60), "created_at": now,
                "updated_at": now} for i in range(20)])
            later = list(s.scalars(select(Article.id).where(Article.url.like("https://news.example.org/b/%"))))
            s.execute(insert(article_topics), [{"article_id": a, "topic_id": topic_ids[i % topics]}
                                               for i, a in enumerate(later)])
            s.commit()
            second = editions.start_edition(s, digest_id)
            t0 = time.perf_counter()
            planned_second = editions.prepare_edition(s, settings, second.id)
            plan_second_seconds = time.perf_counter() - t0
            second_selections = len(s.scalars(select(EditionVariant.id)
                                              .where(EditionVariant.edition_id == second.id)).all())
    finally:
        if pg_name:
            from tests.support import services

            services.drop_pg_database(pg_name)
    total = compile_seconds + fill_seconds
    return {
        "backend": backend, "readers": readers, "topics": topics, "articles": articles,
        "planned": planned, "distinct_selections": len(variants), "mjml_compiles": mjml_compiles,
        "plan_seconds_including_compiles": round(plan_seconds, 3),
        "deck_compile_seconds": round(deck_seconds, 4),
        "compile_seconds_total": round(compile_seconds, 3),
        "compile_us_per_selection": round((compile_seconds - deck_seconds) / max(1, len(variants)) * 1e6, 1),
        "reference_mjml_per_selection_seconds": round(reference_seconds, 3),
        "fill_seconds_total": round(fill_seconds, 3),
        "render_seconds_total": round(total, 3),
        "fill_share_of_render": round(fill_seconds / total, 3) if total else None,
        "second_edition_planned": planned_second,
        "second_edition_selections": second_selections,
        "second_edition_plan_seconds": round(plan_second_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--articles", type=int, default=60, help="new articles across the topics")
    parser.add_argument("--repeat", type=int, default=50, help="compile samples (median)")
    parser.add_argument("--database", default=None,
                        help="'postgres' for a scratch PostgreSQL database on 127.0.0.1; default SQLite")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "render.json"))
    args = parser.parse_args()
    os.environ.setdefault("MAILER_TESTING", "1")
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mailer.editions.prepare").setLevel(logging.INFO)

    result = {"compile": bench_compile(args.repeat), "fill": bench_fill(min(args.readers, 100_000))}
    for key, value in {**result["compile"], **result["fill"]}.items():
        print(f"{key:32} {value}")
    result["plan"] = bench_plan(args.readers, args.topics, args.articles, args.database, args.seed)
    for key, value in result["plan"].items():
        print(f"{key:32} {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
