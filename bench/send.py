"""End-to-end send benchmark: N readers, a 10-article edition, real Celery worker
processes, PostgreSQL, Redis and a local SMTP sink.

    .venv/bin/python bench/send.py                 # 20,000 readers
    .venv/bin/python bench/send.py --readers 1000000

Prints end-to-end messages/second (from the edition's start, planning included,
to the last delivery recorded), CPU seconds per 1,000 messages by process, peak
RSS per worker process, and the rate of a plain reference loop (smtplib, one
connection, pre-built bytes) against the same sink. Writes bench/results/send.json.
It creates and drops its own PostgreSQL database.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BIN,
    ROOT,
    CpuMeter,
    SmtpSink,
    child_env,
    create_pg_database,
    drop_pg_database,
    peak_rss_mib,
    write_result,
)

COPY_CHUNK = 50_000


def insert_readers(dbname: str, count: int) -> float:
    """COPY confirmed readers in chunks: memory stays flat at a million."""
    import psycopg

    started = time.perf_counter()
    now = datetime.now(UTC).isoformat(sep=" ")
    cols = ("email, email_key, name, status, frequency, confirm_nonce, consent_at, "
            "consent_source, consent_ip, created_at")
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={dbname}") as conn:
        for first in range(0, count, COPY_CHUNK):
            buf = io.StringIO()
            for n in range(first, min(count, first + COPY_CHUNK)):
                email = f"reader{n}@example{n % 50}.org"
                buf.write(f"{email}\t{email}\tReader {n}\tconfirmed\timmediate\t\t{now}\t"
                          f"bench\t\t{now}\n")
            with conn.cursor().copy(f"COPY readers ({cols}) FROM STDIN") as copy:
                copy.write(buf.getvalue())
            conn.commit()
        conn.execute("ANALYZE readers")
        conn.commit()
    return time.perf_counter() - started


def make_content(app, articles: int, name: str = "Bench Daily", batch: str = "bench") -> str:
    from mailer.content.articles import upsert_article
    from mailer.extensions import db

    with app.app_context():
        for n in range(articles):
            upsert_article(db.session, {
                "url": f"https://news.example.org/{batch}/{n}",
                "title": f"Council approves harbour plan, part {n}",
                "author": "Bench Reporter",
                "summary": "The council voted to rebuild the old harbour wall before winter "
                           "storms; residents asked for a footpath along the quay. " * 2,
                "image_url": f"https://news.example.org/img/{n}.jpg",
            })
    return make_digest(app, name, articles)


def make_digest(app, name: str, articles: int) -> str:
    from mailer.content.digests import save_digest
    from mailer.extensions import db

    with app.app_context():
        save_digest(db.session, {"name": name, "max_articles": articles})
    return name


def send_edition(app, env: dict[str, str], digest: str, opts, instance: Path, sink, dbname: str,
                 label: str) -> dict:
    """Start a worker, send one edition of `digest`, stop the worker; the figures."""
    profilers: list[subprocess.Popen] = []
    worker = None
    try:
        log = instance / f"worker-{label}.log"
        worker = start_worker(env, log, opts.concurrency, opts.pool)
        parent = psutil.Process(worker.pid)
        meter = CpuMeter()
        meter.watch(worker.pid, "worker parent")
        for child in parent.children(recursive=True):
            meter.watch(child.pid, f"worker {child.pid}")
        meter.watch(sink.pid, "smtp sink")
        meter.watch(os.getpid(), "bench driver")
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.info["name"] == "redis-server" and f":{opts.redis.split(':')[2]}" in cmd:
                meter.watch(proc.pid, "redis (shared)")

        from sqlalchemy import func, select, text

        from mailer.editions.control import start_edition
        from mailer.extensions import db
        from mailer.models import Delivery, Edition

        def watch_backends(from_zero: bool) -> None:
            for (pid,) in db.session.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": dbname}):
                meter.watch(pid, "postgres backends", from_zero=from_zero)

        with app.app_context():
            watch_backends(False)
            print(f"sending ({label}) to {opts.readers:,} readers with {opts.concurrency} "
                  f"{opts.pool} worker(s) ...", flush=True)
            edition = start_edition(db.session, digest, created_by="bench")
            edition_id = edition.id
            if opts.profile:
                for child in parent.children(recursive=True) or [parent]:
                    out = ROOT / "bench" / "results" / f"send-profile-{child.pid}.txt"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    profilers.append(subprocess.Popen(
                        [str(BIN / "py-spy"), "record", "--pid", str(child.pid), "--format",
                         "raw", "--output", str(out), "--rate", "200", "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            status = ""
            while status not in ("done", "failed", "cancelled"):
                time.sleep(0.5)
                db.session.rollback()
                status = db.session.scalar(select(Edition.status).where(Edition.id == edition_id))
                watch_backends(True)
                meter.sample()
                if worker.poll() is not None:
                    raise SystemExit(f"worker died:\n{log.read_text()[-3000:]}")
            meter.sample()
            peaks = {f"worker {c.pid}": peak_rss_mib(c.pid) for c in parent.children(True)}
            peaks["worker parent"] = peak_rss_mib(worker.pid)
            edition = db.session.get(Edition, edition_id)
            counts = dict(db.session.execute(
                select(Delivery.status, func.count()).where(Delivery.edition_id == edition_id)
                .group_by(Delivery.status)).all())
            last_sent = db.session.scalar(select(func.max(Delivery.sent_at))
                                          .where(Delivery.edition_id == edition_id))
            created, started = edition.created_at, edition.started_at
            db.session.remove()
        for p in profilers:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=30)
        stop_group(worker)
        worker = None

        sent = counts.get("sent", 0)
        total_s = (last_sent - created).total_seconds()
        send_s = (last_sent - started).total_seconds()
        cpu = meter.by_name()
        grouped: dict[str, float] = {}
        for name, seconds in cpu.items():
            key = "worker children" if name.startswith("worker ") and name != "worker parent" \
                else name
            grouped[key] = grouped.get(key, 0.0) + seconds
        per_1000 = {name: round(sec / max(sent, 1) * 1000, 3) for name, sec in grouped.items()}
        per_1000_each = {name: round(sec / max(sent, 1) * 1000, 3) for name, sec in cpu.items()}
    finally:
        if worker is not None:
            stop_group(worker)
    return {"label": label, "edition_id": edition_id, "statuses": counts, "sent": sent,
            "total_s": total_s, "send_s": send_s, "per_1000": per_1000,
            "per_1000_each": per_1000_each, "peaks": peaks,
            "planning_seconds": (started - created).total_seconds()}


def start_worker(env: dict[str, str], log: Path, concurrency: int, pool: str) -> subprocess.Popen:
    args = [str(BIN / "celery"), "-A", "workers.celery_app", "worker", "--loglevel", "INFO",
            "--concurrency", str(concurrency), "--pool", pool, "--without-gossip",
            "--without-mingle", "--without-heartbeat", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "ready." in log.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"worker exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise SystemExit(f"worker not ready after 60s:\n{log.read_text()[-3000:]}")


def stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def reference_loop(port: int, data: bytes, count: int) -> dict[str, float]:
    """The plain floor to compare with: smtplib, one connection, pre-built bytes."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as conn:
        for n in range(count):
            conn.sendmail("news@bench.test", [f"ref{n}@example.org"], data)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {"messages": count, "seconds": round(elapsed, 3),
            "messages_per_second": round(count / elapsed, 1),
            "cpu_seconds_per_1000": round(cpu / count * 1000, 3)}


def sample_message(app, edition_id: int) -> bytes:
    """One real message of this edition, rendered exactly as the worker does."""
    from sqlalchemy import select

    from mailer.delivery.lane import ReaderRow, SkeletonCache, recipient_for
    from mailer.extensions import db
    from mailer.models import Delivery, Reader
    from mailer.runtime import runtime

    with app.app_context():
        rt = runtime()
        row = db.session.execute(
            select(Delivery.variant_id, Reader.id, Reader.email, Reader.name, Reader.status,
                   Reader.frequency).join(Reader, Reader.id == Delivery.reader_id)
            .where(Delivery.edition_id == edition_id).limit(1)).one()
        skeleton = SkeletonCache(rt.settings, rt.dkim).get(db.session, edition_id, row[0])
        return skeleton.render(recipient_for(rt.settings, rt.tokens, ReaderRow(*row[1:])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=20_000)
    parser.add_argument("--articles", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (prefork)")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--lanes", type=int, default=0, help="MAILER_SEND_LANES (0 = default)")
    parser.add_argument("--batch", type=int, default=0, help="MAILER_BATCH_SIZE (0 = default)")
    parser.add_argument("--reference", type=int, default=10_000,
                        help="messages in the smtplib reference loop")
    parser.add_argument("--redis", default=os.environ.get("MAILER_TEST_REDIS",
                                                          "redis://127.0.0.1:6379/0"))
    parser.add_argument("--profile", action="store_true",
                        help="record a py-spy profile of the workers (bench/results/send-*.txt)")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--dkim", action="store_true",
                        help="then send a second edition DKIM-signed (RSA-2048) and compare rates")
    opts = parser.parse_args()

    sink = SmtpSink.start()
    dbname, db_url = create_pg_database()
    instance = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    settings = {
        "MAILER_INSTANCE_PATH": str(instance),
        "MAILER_DATABASE_URL": db_url,
        "MAILER_BROKER_URL": opts.redis,
        "MAILER_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        "MAILER_QUEUE": queue,
        "MAILER_SECRET_KEY": "bench-secret",
        "MAILER_FROM": "Bench News <news@bench.test>",
        "MAILER_BASE_URL": "https://news.bench.test",
    }
    if opts.lanes:
        settings["MAILER_SEND_LANES"] = str(opts.lanes)
    if opts.batch:
        settings["MAILER_BATCH_SIZE"] = str(opts.batch)
    env = child_env(settings)
    worker = None
    try:
        upgrade = subprocess.run([str(BIN / "flask"), "--app", "mailer", "db", "upgrade"],
                                 cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if upgrade.returncode:
            raise SystemExit(upgrade.stderr)
        print(f"inserting {opts.readers:,} readers ...", flush=True)
        insert_seconds = insert_readers(dbname, opts.readers)

        os.environ.update(settings)
        from mailer import create_app

        app = create_app(ratelimit=False)
        digest = make_content(app, opts.articles)

        runs = [send_edition(app, env, digest, opts, instance, sink, dbname, "unsigned")]
        if opts.dkim:
            key = instance / "dkim.pem"
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                           capture_output=True)
            signed_env = {**env, "MAILER_DKIM_SELECTOR": "bench", "MAILER_DKIM_DOMAIN": "bench.test",
                          "MAILER_DKIM_PRIVATE_KEY": str(key)}
            # New articles: readers are never sent the same article twice.
            signed_digest = make_content(app, opts.articles, "Bench Daily Signed", "signed")
            runs.append(send_edition(app, signed_env, signed_digest, opts, instance, sink, dbname,
                                     "dkim"))
        run = runs[0]
        edition_id, counts, sent = run["edition_id"], run["statuses"], run["sent"]
        total_s, send_s, peaks = run["total_s"], run["send_s"], run["peaks"]
        per_1000, per_1000_each = run["per_1000"], run["per_1000_each"]

        data = sample_message(app, edition_id)
        print(f"reference loop: {opts.reference:,} pre-built messages of {len(data):,} bytes ...",
              flush=True)
        reference = reference_loop(sink.port, data, opts.reference)

        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "readers": opts.readers, "articles": opts.articles,
            "pool": opts.pool, "concurrency": opts.concurrency,
            "lanes": opts.lanes or "default", "batch": opts.batch or "default",
            "sink": sink.kind, "message_bytes": len(data),
            "statuses": counts,
            "reader_insert_seconds": round(insert_seconds, 2),
            "planning_seconds": round(run["planning_seconds"], 3),
            "end_to_end_seconds": round(total_s, 3),
            "end_to_end_messages_per_second": round(sent / total_s, 1),
            "send_phase_messages_per_second": round(sent / send_s, 1),
            "cpu_seconds_per_1000_messages": per_1000,
            "cpu_seconds_per_1000_messages_each": per_1000_each,
            "peak_rss_mib": peaks,
            "reference_smtplib_loop": reference,
        }
        if opts.dkim:
            signed = runs[1]
            result["dkim"] = {
                "statuses": signed["statuses"],
                "end_to_end_messages_per_second": round(signed["sent"] / signed["total_s"], 1),
                "send_phase_messages_per_second": round(signed["sent"] / signed["send_s"], 1),
                "cpu_seconds_per_1000_messages": signed["per_1000"],
            }
            result["dkim"]["signed_to_unsigned_ratio"] = round(
                result["dkim"]["send_phase_messages_per_second"]
                / result["send_phase_messages_per_second"], 3)
        path = write_result("send", result)
        print()
        print(f"readers                 {opts.readers:,}  ({sink.kind}, {len(data):,}-byte messages)")
        print(f"statuses                {counts}")
        print(f"compile + queue         {result['planning_seconds']} s (the ledger INSERT comes after)")
        print(f"end to end              {result['end_to_end_messages_per_second']:,} msg/s "
              f"({total_s:.1f} s, start of send to last delivery recorded)")
        print(f"send phase only         {result['send_phase_messages_per_second']:,} msg/s")
        print("CPU s per 1,000 msgs    " + ", ".join(f"{k}: {v}" for k, v in per_1000.items()))
        print("peak RSS per worker     " + ", ".join(f"{k}: {v} MiB" for k, v in peaks.items()))
        print(f"reference smtplib loop  {reference['messages_per_second']:,} msg/s "
              f"({reference['cpu_seconds_per_1000']} CPU s per 1,000)")
        if opts.dkim:
            d = result["dkim"]
            print(f"DKIM-signed edition     {d['send_phase_messages_per_second']:,} msg/s send phase "
                  f"({d['signed_to_unsigned_ratio']} x unsigned), end to end "
                  f"{d['end_to_end_messages_per_second']:,} msg/s")
            print("  CPU s per 1,000 msgs  " + ", ".join(f"{k}: {v}"
                                                     for k, v in d["cpu_seconds_per_1000_messages"].items()))
        print(f"JSON                    {path}")
    finally:
        if worker is not None:
            stop_group(worker)
        sink.stop()
        try:
            import redis

            redis.Redis.from_url(opts.redis).delete(queue, f"{queue}\x06\x161", f"{queue}\x06\x162")
        except Exception as exc:
            print(f"could not clean Redis queue {queue}: {exc}", file=sys.stderr)
        if not opts.keep_db:
            drop_pg_database(dbname)


if __name__ == "__main__":
    main()
