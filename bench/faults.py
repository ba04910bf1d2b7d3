"""Fault campaign: one edition sent by real Celery workers (PostgreSQL, a private
Redis, a recording SMTP server) while faults are injected one after another.

    .venv/bin/python bench/run.py faults                    # 30,000 readers
    .venv/bin/python bench/faults.py --readers 100000 --gap 15

Faults, in the order of `--faults` (default: kill-child, kill-worker, pg-terminate,
smtp-down, redis-restart, kill-worker: three kill -9 and three service faults),
`--gap` seconds apart once sending is under way:
  kill-child     kill -9 of one worker pool process (Celery respawns it)
  kill-worker    kill -9 of a whole worker (its process group), restarted at once;
                 a second kill-worker hits the other worker
  pg-terminate   pg_terminate_backend() of every connection to the campaign's own
                 database (filtered on datname; other databases are untouched)
  smtp-down      the SMTP server killed, restarted 5 s later on the same port
  redis-restart  the bench's private redis-server (never the shared one) killed
                 and restarted empty: queued lane tasks are lost

Before the faulty edition, a fault-free edition to the same readers gives the
reference time (`--no-baseline` skips it; `--baseline-after` adds a second one after
the faulty edition and compares with the mean of both). For each fault it prints the cost:
seconds from the fault (for smtp-down: from the server's return) until the
receive rate, in 1 s steps, is back to half its level in the 3 s before the
fault, and the sending time lost (the shortfall against that level over the
next 10 s, in seconds at that level). Then duplicates (a reader received twice), misses (a reader with no
message whose row is not `unknown`/`failed`) and each `unknown` row (received
or not), and the tail: from the last `pending` row to the edition's end.
Writes bench/results/faults.json. Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BIN,
    ROOT,
    child_env,
    create_pg_database,
    drop_pg_database,
    free_port,
    wait_port,
    write_result,
)
from bench.send import insert_readers, start_worker, stop_group
from tests.support.redis_server import RedisServer

FAULTS = ("kill-child", "kill-worker", "pg-terminate", "smtp-down", "redis-restart")
# The campaign: three kill -9 of a worker (a pool process, then each whole
# worker in turn) and the three service faults.
DEFAULT_FAULTS = ("kill-child", "kill-worker", "pg-terminate", "smtp-down", "redis-restart",
                  "kill-worker")
SMTP_DOWN_SECONDS = 5.0


# --- the recording SMTP server (run as a child process of this script) -------------

def serve_smtp(port: int, record: Path) -> None:
    """aiosmtpd server appending `recipient<TAB>Message-ID` per accepted message,
    written and flushed before the 250 goes back (a kill after the write but
    before the reply is exactly the ambiguous case the ledger calls `unknown`)."""
    from aiosmtpd.controller import Controller

    out = record.open("ab", buffering=0)

    class Recorder:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            data: bytes = envelope.content
            start = data.find(b"Message-ID:")
            mid = data[start + 11:data.find(b"\r\n", start)].strip() if start >= 0 else b"?"
            out.write(b"".join(f"{r}\t".encode() + mid + b"\n" for r in envelope.rcpt_tos))
            return "250 OK"

    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before the server thread starts
    controller = Controller(Recorder(), hostname="127.0.0.1", port=port,
                            data_size_limit=10_000_000)
    controller.start()
    signal.sigwait(stop)
    controller.stop()


class RecordingSmtp:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.record = folder / "received.tsv"
        self.record.touch()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-smtp", str(self.port), str(self.record)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def received(self) -> int:
        """Lines written so far (cheap: counts newlines of the file)."""
        with self.record.open("rb") as f:
            return f.read().count(b"\n")


# --- the campaign ---------------------------------------------------------------------

class Campaign:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.folder = Path(tempfile.mkdtemp(prefix="mailer-faults-"))
        self.smtp = RecordingSmtp(self.folder)
        self.redis = RedisServer(self.folder)
        self.dbname = ""
        self.workers: list[subprocess.Popen[bytes]] = []
        self.beat: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.samples: list[tuple[float, int]] = []  # (monotonic time, received so far)
        self.events: list[dict[str, Any]] = []

    def start_services(self) -> None:
        self.smtp.start()
        self.redis.start()
        self.dbname, db_url = create_pg_database("mailer_faults")
        settings = {
            "MAILER_INSTANCE_PATH": str(self.folder / "instance"),
            "MAILER_DATABASE_URL": db_url,
            "MAILER_BROKER_URL": self.redis.url,
            "MAILER_SMTP_URL": f"smtp://127.0.0.1:{self.smtp.port}?timeout=10",
            "MAILER_QUEUE": "faults",
            "MAILER_SECRET_KEY": "faults-secret",
            "MAILER_FROM": "Fault News <news@faults.test>",
            "MAILER_BASE_URL": "https://news.faults.test",
            # The engine's defaults otherwise (lease 120 s, tick 10 s): recovery
            # must not depend on short leases.
        }
        self.env = child_env(settings)
        upgrade = subprocess.run([str(BIN / "flask"), "--app", "mailer", "db", "upgrade"],
                                 cwd=ROOT, env=self.env, capture_output=True, text=True,
                                 check=False)
        if upgrade.returncode:
            raise SystemExit(upgrade.stderr)
        os.environ.update(settings)

    def start_worker(self, n: int, wait: bool = True) -> subprocess.Popen[bytes]:
        log = self.folder / f"worker{n}.log"
        if wait:
            return start_worker(self.env, log, self.opts.concurrency, "prefork")
        # A supervisor restarting a dead worker: the campaign goes on meanwhile.
        return subprocess.Popen(
            [str(BIN / "celery"), "-A", "workers.celery_app", "worker", "--loglevel", "INFO",
             "--concurrency", str(self.opts.concurrency), "--pool", "prefork",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"faults-{n}-{os.getpid()}@%h"],
            cwd=ROOT, env=self.env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def start_processes(self) -> None:
        self.workers = [self.start_worker(n) for n in range(self.opts.workers)]
        self.beat = subprocess.Popen(
            [str(BIN / "celery"), "-A", "workers.celery_app", "beat", "--loglevel", "INFO",
             "-s", str(self.folder / "beat-schedule")],
            cwd=ROOT, env=self.env, stdout=(self.folder / "beat.log").open("ab"),
            stderr=subprocess.STDOUT, start_new_session=True)

    def stop_processes(self) -> None:
        for proc in [*self.workers, *([self.beat] if self.beat else [])]:
            stop_group(proc)

    # -- faults
    def inject(self, name: str) -> dict[str, Any]:
        event: dict[str, Any] = {"fault": name, "at": time.monotonic()}
        if name == "kill-child":
            children = psutil.Process(self.workers[0].pid).children()
            if children:
                os.kill(children[0].pid, signal.SIGKILL)
                event["pid"] = children[0].pid
        elif name == "kill-worker":
            # Each whole-worker kill takes the next worker from the end, so a
            # second one hits a worker that was running since the start.
            kills = sum(1 for e in self.events if e["fault"] == "kill-worker")
            n = len(self.workers) - 1 - kills % len(self.workers)
            victim = self.workers[n]
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            event["pid"] = victim.pid
            self.workers[n] = self.start_worker(len(self.workers) + len(self.events), wait=False)
        elif name == "pg-terminate":
            import psycopg

            with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres",
                                 autocommit=True) as conn:
                event["terminated"] = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (self.dbname,)
                ).fetchone()[0]  # type: ignore[index]
        elif name == "smtp-down":
            self.smtp.kill()
            self.sleep_sampling(SMTP_DOWN_SECONDS)
            self.smtp.start()
            event["back_at"] = time.monotonic()
        elif name == "redis-restart":
            self.redis.kill()
            self.redis.start()
        self.events.append(event)
        print(f"  {time.strftime('%H:%M:%S')} fault {name} {event}", flush=True)
        return event

    def sample(self) -> None:
        self.samples.append((time.monotonic(), self.smtp.received()))

    def sleep_sampling(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            time.sleep(0.1)

    def run_edition(self, app: Any, digest: str, faults: tuple[str, ...]) -> dict[str, Any]:
        from sqlalchemy import func, select

        from mailer.editions.control import start_edition
        from mailer.extensions import db
        from mailer.models import Delivery, Edition

        with app.app_context():
            edition = start_edition(db.session, digest, created_by="faults")
            edition_id = edition.id
        first_received = self.smtp.received()
        t0 = time.monotonic()
        pending_zero_at: float | None = None
        next_fault = 0
        fault_at: float | None = None
        status = ""
        last_db_poll = 0.0
        while status not in ("done", "failed", "cancelled"):
            self.sample()
            now = time.monotonic()
            if fault_at is None and self.samples[-1][1] - first_received > 0:
                fault_at = now + self.opts.warmup  # sending is under way
            if fault_at is not None and next_fault < len(faults) and now >= fault_at:
                self.inject(faults[next_fault])
                next_fault += 1
                fault_at = time.monotonic() + self.opts.gap
            if now - last_db_poll >= 0.5:
                last_db_poll = now
                try:
                    with app.app_context():
                        status = db.session.scalar(
                            select(Edition.status).where(Edition.id == edition_id)) or ""
                        if pending_zero_at is None and status == "sending":
                            left = db.session.scalar(
                                select(func.count()).select_from(Delivery).where(
                                    Delivery.edition_id == edition_id,
                                    Delivery.status.in_(["pending", "retry"])))
                            if left == 0:
                                pending_zero_at = time.monotonic()
                        db.session.remove()
                except Exception as exc:  # our own connection was terminated too
                    print(f"  (status poll: {type(exc).__name__}; retrying)", flush=True)
                    with app.app_context():
                        db.session.remove()
            if time.monotonic() - t0 > self.opts.timeout:
                raise SystemExit(f"edition {edition_id} not done after {self.opts.timeout}s")
            time.sleep(0.1)
        done_at = time.monotonic()
        self.sample()
        if next_fault < len(faults):
            print(f"  WARNING: the edition ended before faults {faults[next_fault:]}; "
                  "use more --readers or a shorter --gap", flush=True)
        with app.app_context():
            counts = dict(db.session.execute(
                select(Delivery.status, func.count()).where(Delivery.edition_id == edition_id)
                .group_by(Delivery.status)).all())
            e = db.session.get(Edition, edition_id)
            assert e is not None
            times = {"created": e.created_at, "started": e.started_at, "finished": e.finished_at}
            db.session.remove()
        return {"edition_id": edition_id, "counts": counts, "t0": t0, "done_at": done_at,
                "pending_zero_at": pending_zero_at, "times": times}


def rate_series(samples: list[tuple[float, int]], start: float, end: float) -> list[float]:
    """Messages per second in 1 s steps from `start` to `end` (linear between samples)."""
    def at(t: float) -> float:
        prev = samples[0]
        for s in samples:
            if s[0] >= t:
                if s[0] == prev[0]:
                    return float(s[1])
                return prev[1] + (s[1] - prev[1]) * (t - prev[0]) / (s[0] - prev[0])
            prev = s
        return float(samples[-1][1])

    out = []
    t = start
    while t + 1 <= end:
        out.append(at(t + 1) - at(t))
        t += 1
    return out


def fault_costs(samples: list[tuple[float, int]], events: list[dict[str, Any]],
                end: float) -> list[dict[str, Any]]:
    costs = []
    for event in events:
        at = event["at"]
        before = rate_series(samples, at - 3, at)
        level = sum(before) / len(before) if before else 0.0
        start = event.get("back_at", at)
        recovered = None
        t = start
        while t + 1 <= end:
            if rate_series(samples, t, t + 1)[0] >= level / 2:
                recovered = round(t - start, 1)
                break
            t += 0.25
        # Sending time lost: the shortfall against the pre-fault level from the
        # fault to 10 s after it (or after the server's return), in seconds at that
        # level. Signed, so load noise averages out rather than adding up.
        window = rate_series(samples, at, min(start + 10, end))
        lost = sum(level - r for r in window) / level if level and window else None
        costs.append({"fault": event["fault"], "rate_before": round(level, 1),
                      "seconds_to_half_rate": recovered,
                      "seconds_lost": None if lost is None else round(lost, 1),
                      "measured_from": "server back" if "back_at" in event else "fault",
                      **{k: v for k, v in event.items() if k not in ("at", "back_at", "fault")}})
    return costs


def check_ledger(app: Any, edition_id: int, record: Path, since_line: int) -> dict[str, Any]:
    from sqlalchemy import select

    from mailer.extensions import db
    from mailer.models import Delivery, Reader

    lines = record.read_bytes().split(b"\n")[since_line:]
    received = Counter(line.split(b"\t", 1)[0].decode() for line in lines if line)
    with app.app_context():
        rows = db.session.execute(
            select(Reader.email, Delivery.status, Delivery.error)
            .join(Reader, Reader.id == Delivery.reader_id)
            .where(Delivery.edition_id == edition_id)).all()
        db.session.remove()
    duplicates = {e: n for e, n in received.items() if n > 1}
    missing, unknown = [], []
    for email, status, error in rows:
        if status == "unknown":
            unknown.append({"email": email, "received": received.get(email, 0),
                            "error": error[:120]})
        elif status == "sent" and received.get(email, 0) == 0:
            missing.append({"email": email, "status": status})
        elif status not in ("sent", "failed", "skipped") and not received.get(email):
            missing.append({"email": email, "status": status})
    return {"readers": len(rows), "duplicates": len(duplicates),
            "duplicate_examples": dict(list(duplicates.items())[:10]),
            "missing": len(missing), "missing_examples": missing[:10],
            "unknown": len(unknown), "unknown_rows": unknown[:50]}


def add_articles(app: Any, count: int, tag: str) -> str:
    from mailer.content.articles import upsert_article
    from mailer.content.digests import save_digest
    from mailer.extensions import db
    from mailer.models import Digest

    with app.app_context():
        for n in range(count):
            upsert_article(db.session, {
                "url": f"https://news.faults.test/{tag}/{n}",
                "title": f"Storm closes the ferry, update {n} ({tag})",
                "author": "Fault Reporter",
                "summary": "The morning ferry did not sail; the harbour master expects "
                           "the crossing to reopen tomorrow. " * 2,
            })
        if db.session.query(Digest).filter_by(name="Fault Daily").first() is None:
            save_digest(db.session, {"name": "Fault Daily", "max_articles": count})
        db.session.remove()
    return "Fault Daily"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=30_000)
    parser.add_argument("--articles", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="worker instances")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes each")
    parser.add_argument("--gap", type=float, default=8.0, help="seconds between faults")
    parser.add_argument("--warmup", type=float, default=4.0,
                        help="seconds of sending before the first fault")
    parser.add_argument("--faults", default=",".join(DEFAULT_FAULTS),
                        help=f"comma-separated, from {', '.join(FAULTS)} (repeats allowed)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--baseline-after", action="store_true",
                        help="a second fault-free edition after the faulty one; the ratio "
                             "is then to the mean of both (load drift on a shared machine)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep-db", action="store_true")
    opts = parser.parse_args()
    faults = tuple(f.strip() for f in opts.faults.split(",") if f.strip())
    unknown_faults = set(faults) - set(FAULTS)
    if unknown_faults:
        parser.error(f"unknown faults: {sorted(unknown_faults)}")

    campaign = Campaign(opts)
    try:
        campaign.start_services()
        print(f"inserting {opts.readers:,} readers ...", flush=True)
        insert_readers(campaign.dbname, opts.readers)
        from mailer import create_app

        app = create_app(ratelimit=False)
        campaign.start_processes()
        results: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "readers": opts.readers, "workers": opts.workers,
            "concurrency": opts.concurrency, "gap": opts.gap, "faults": faults,
        }
        baselines: list[float] = []

        def fault_free(tag: str) -> None:
            digest = add_articles(app, opts.articles, tag)
            print(f"fault-free edition ({tag}) ...", flush=True)
            line0 = campaign.smtp.received()
            base = campaign.run_edition(app, digest, ())
            seconds = round(base["done_at"] - base["t0"], 1)
            check = check_ledger(app, base["edition_id"], campaign.smtp.record, line0)
            results.setdefault("baselines", []).append({
                "seconds": seconds, "counts": base["counts"],
                "duplicates": check["duplicates"], "missing": check["missing"]})
            baselines.append(seconds)
            print(f"  {seconds} s, {base['counts']}", flush=True)

        if not opts.no_baseline:
            fault_free("baseline")
        digest = add_articles(app, opts.articles, "faults")
        print(f"edition with faults {', '.join(faults)} ...", flush=True)
        line0 = campaign.smtp.received()
        events_before = len(campaign.events)
        run = campaign.run_edition(app, digest, faults)
        seconds = round(run["done_at"] - run["t0"], 1)
        costs = fault_costs(campaign.samples, campaign.events[events_before:], run["done_at"])
        check = check_ledger(app, run["edition_id"], campaign.smtp.record, line0)
        tail = (round(run["done_at"] - run["pending_zero_at"], 1)
                if run["pending_zero_at"] else None)
        results["faulty"] = {
            "rate_per_second": [round(r) for r in rate_series(campaign.samples, run["t0"],
                                                               run["done_at"])],
            "fault_offsets": [[e["fault"], round(e["at"] - run["t0"], 1)]
                              for e in campaign.events],
            "seconds": seconds, "counts": run["counts"], "fault_costs": costs,
            "tail_seconds_after_last_pending": tail,
            "seconds_lost_all_faults": round(sum(c["seconds_lost"] or 0 for c in costs), 1),
            **check,
        }
        if opts.baseline_after and not opts.no_baseline:
            # A second fault-free edition after the faulty one: on a shared machine
            # the load drifts, and the mean of the two brackets the faulty run.
            fault_free("baseline-after")
        baseline_seconds = round(sum(baselines) / len(baselines), 1) if baselines else None
        results["baseline_seconds"] = baseline_seconds
        results["faulty"]["ratio_to_baseline"] = (
            round(seconds / baseline_seconds, 2) if baseline_seconds else None)
        path = write_result("faults", results)
        print()
        print(f"readers                 {opts.readers:,} ({opts.workers} workers x "
              f"{opts.concurrency} processes, recording aiosmtpd server)")
        if baseline_seconds:
            print(f"fault-free edition      {baseline_seconds} s"
                  + (f" (mean of {' and '.join(map(str, baselines))})"
                     if len(baselines) > 1 else ""))
        print(f"edition with faults     {seconds} s"
              + (f"  ({results['faulty']['ratio_to_baseline']}x)" if baseline_seconds else ""))
        for c in costs:
            print(f"  {c['fault']:<14} rate before {c['rate_before']:>7} msg/s; back to half "
                  f"after {c['seconds_to_half_rate']} s (from the {c['measured_from']}); "
                  f"~{c['seconds_lost']} s of sending lost")
        lost = sum(c["seconds_lost"] or 0 for c in costs)
        print(f"sending lost, all faults ~{lost:.1f} s"
              + (f" (~{lost / baseline_seconds:.0%} of the fault-free time)"
                 if baseline_seconds else ""))
        print(f"tail after last pending {tail} s")
        print(f"statuses                {run['counts']}")
        print(f"duplicates              {check['duplicates']}")
        print(f"missing                 {check['missing']}")
        print(f"unknown                 {check['unknown']} "
              f"({sum(1 for u in check['unknown_rows'] if u['received'])} of them received)")
        print(f"JSON                    {path}")
    finally:
        campaign.stop_processes()
        campaign.smtp.stop()
        campaign.redis.kill()
        if campaign.dbname and not opts.keep_db:
            drop_pg_database(campaign.dbname)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-smtp":
        asyncio.set_event_loop(asyncio.new_event_loop())
        serve_smtp(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
