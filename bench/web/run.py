"""bench/web: signup and one-click unsubscribe under load against gunicorn.

One command: `python bench/web/run.py [--duration 15] [--connections 32] [--rate 300]`.
It creates its own PostgreSQL database, points the limiter (and the broker, so
signups wake the confirmation task as in production) at a Redis database,
raises the per-IP signup limit (everything comes from 127.0.0.1), starts
gunicorn and drives it with wrk on loopback. Each scenario runs twice:

- at saturation: `--connections` closed-loop connections, as fast as answers
  come (the most the server does per second; latency there is mostly queueing);
- paced: `--rate` requests/s offered on a fixed schedule (wrk's delay() hook,
  common.lua), the latency a reader sees at that load.

Signup posts use `Connection: close`, like separate visitors; with keep-alive,
wrk's few long-lived connections pile onto one gunicorn worker. Prints
requests/s and p50/p90/p99 latency and writes bench/results/web.json. Nothing
is timed inside tests.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
import redis
from itsdangerous import URLSafeTimedSerializer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from bench.common import create_pg_database, drop_pg_database, free_port  # noqa: E402


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer at {url}")


def csrf_session(base: str) -> tuple[str, str]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/subscribe").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return cookie, token


def wrk(script: str, base: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, float]:
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
           "--timeout", "5s", "-s", str(HERE / script), base]
    env = {"BENCH_LUA_DIR": str(HERE), "BENCH_THREADS": str(args.threads), **env}
    out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    raw = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    seconds = raw["duration_us"] / 1e6
    return {"requests": raw["requests"], "seconds": round(seconds, 2),
            "requests_per_second": round(raw["requests"] / seconds, 1),
            "p50_ms": raw["p50_us"] / 1000, "p90_ms": raw["p90_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000, "max_ms": raw["max_us"] / 1000,
            "non_200": raw["non200"], "socket_errors": raw["socket_errors"]}


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def server_pids(gunicorn: subprocess.Popen[bytes]) -> dict[str, list[int]]:
    """The gunicorn master and workers (PostgreSQL's backends come and go with the
    pool's overflow connections, so their CPU is not attributed here)."""
    children = psutil.Process(gunicorn.pid).children(recursive=True)
    return {"gunicorn": [gunicorn.pid] + [c.pid for c in children]}


def measured(script: str, base: str, args: argparse.Namespace, env: dict[str, str],
             pids: dict[str, list[int]]) -> dict[str, float]:
    """wrk figures plus CPU milliseconds per request spent by gunicorn
    (a figure that other load on the machine disturbs much less than requests/s)."""
    before = {k: cpu_seconds(v) for k, v in pids.items()}
    result = wrk(script, base, args, env)
    for k, v in pids.items():
        result[f"{k}_cpu_ms_per_request"] = round(
            (cpu_seconds(v) - before[k]) * 1000 / max(1, result["requests"]), 3)
    result["load_average_1m_after"] = os.getloadavg()[0]
    return result


def start_profilers(pids: list[int]) -> list[subprocess.Popen[bytes]]:
    """py-spy (CPU samples only, --idle off) on each gunicorn worker."""
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(pid), "--format", "raw",
                              "--output", str(out / f"web-profile-{pid}.txt"), "--rate", "250",
                              "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in pids]


def seed_readers(db_url: str, count: int, run: str) -> list[int]:
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        now = datetime.now(UTC)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO readers (email, email_key, name, status, frequency, confirm_nonce, "
                "consent_source, consent_ip, created_at, consent_at, confirmed_at) "
                "VALUES (%s, %s, '', 'confirmed', 'immediate', 'n', 'bench', '', %s, %s, %s)",
                [(f"u{run}{i}@example.org", f"u{run}{i}@example.org", now, now, now) for i in range(count)])
            cur.execute("SELECT id FROM readers WHERE consent_source = 'bench' ORDER BY id")
            return [row[0] for row in cur.fetchall()]


def count_status(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute("SELECT status, count(*) FROM readers GROUP BY status").fetchall()
        return {status: n for status, n in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32,
                        help="connections of the saturation runs (closed loop)")
    parser.add_argument("--rate", type=int, default=300,
                        help="requests/s offered in the paced runs (the target)")
    parser.add_argument("--paced-connections", type=int, default=64,
                        help="connections of the paced runs (enough that none falls behind)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    # 16 as in the Procfile: signup answers are padded to MAILER_SIGNUP_MIN_SECONDS,
    # and with 8 threads bursts of sleeping requests left new visitors queued.
    parser.add_argument("--worker-threads", type=int, default=16, help="gunicorn threads per worker")
    parser.add_argument("--min-seconds", default=os.environ.get("MAILER_SIGNUP_MIN_SECONDS", "0.03"),
                        help="MAILER_SIGNUP_MIN_SECONDS (constant-time padding of signup answers)")
    parser.add_argument("--readers", type=int, default=30_000, help="readers seeded for unsubscribe")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the gunicorn workers during the signup run "
                             "(bench/results/web-profile-<pid>.txt, one line per stack)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")

    run = uuid.uuid4().hex[:8]
    db_name, db_url = create_pg_database("bench_web")
    instance = Path(tempfile.mkdtemp(prefix="bench-web-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    queue = f"bench-web-{run}"
    secret = f"bench-{run}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAILER_")},
           "MAILER_DATABASE_URL": db_url, "MAILER_BROKER_URL": args.redis,
           "MAILER_INSTANCE_PATH": str(instance), "MAILER_SECRET_KEY": secret,
           "MAILER_BASE_URL": base, "MAILER_QUEUE": queue,
           "MAILER_SIGNUP_RATE_LIMIT": "1000000 per minute",
           "MAILER_SIGNUP_MIN_SECONDS": str(args.min_seconds),
           "PYTHONPATH": str(ROOT), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    gunicorn = None
    results: dict[str, object] = {}
    try:
        subprocess.run([str(BIN / "flask"), "--app", "mailer", "db", "upgrade"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        ids = seed_readers(db_url, args.readers, run)
        signer = URLSafeTimedSerializer(secret, salt="mailer.unsubscribe")
        tokens_file = instance / "tokens.txt"
        tokens_file.write_text("\n".join(signer.dumps({"r": i}) for i in ids) + "\n")

        log = open(instance / "gunicorn.log", "wb")
        gunicorn = subprocess.Popen(
            [str(BIN / "gunicorn"), "--no-control-socket", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--worker-class", "gthread",
             "--threads", str(args.worker_threads), "--backlog", "2048", "mailer:create_app()"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"{base}/healthz")
        cookie, csrf = csrf_session(base)
        # Warm each worker (imports, connection pools) before measuring.
        wrk_env = {"BENCH_COOKIE": cookie, "BENCH_CSRF": csrf, "BENCH_RUN": f"w{run}",
                   "BENCH_TOKENS": str(tokens_file), "BENCH_THREADS": str(args.threads)}
        warm = argparse.Namespace(**{**vars(args), "duration": 3})
        wrk("signup.lua", base, warm, wrk_env)
        wrk("unsubscribe.lua", base, argparse.Namespace(**{**vars(args), "duration": 1}), wrk_env)

        pids = server_pids(gunicorn)
        print(f"gunicorn {args.workers}x{args.worker_threads} gthread, signup padding "
              f"{args.min_seconds}s, {args.duration}s per scenario")
        for name, script, what in (("signup", "signup.lua", "POST /subscribe, a new address each"),
                                   ("unsubscribe", "unsubscribe.lua",
                                    "one-click POST /unsubscribe/<token>")):
            # Saturation: closed loop, as fast as the server answers.
            profilers = start_profilers(pids["gunicorn"][1:]) if args.profile and name == "signup" else []
            results[name] = measured(script, base, args, {**wrk_env, "BENCH_RUN": f"s{run}"}, pids)
            for profiler in profilers:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=60)
            print(f"{name} at saturation ({what}; {args.connections} connections):")
            print("  ", results[name])
            # Paced: the target rate offered on a fixed schedule; latency at that load.
            paced = argparse.Namespace(**{**vars(args), "connections": args.paced_connections})
            results[f"{name}_at_{args.rate}_per_s"] = measured(
                script, base, paced, {**wrk_env, "BENCH_RUN": f"p{run}", "BENCH_RATE": str(args.rate)},
                pids)
            print(f"{name} offered at {args.rate}/s ({args.paced_connections} connections):")
            print("  ", results[f"{name}_at_{args.rate}_per_s"])
        statuses = count_status(db_url)
        results["reader_statuses_after"] = statuses
        print("   reader statuses after:", statuses)
    finally:
        if gunicorn is not None:
            os.killpg(gunicorn.pid, signal.SIGTERM)
            gunicorn.wait(timeout=30)
        r = redis.Redis.from_url(args.redis)
        r.delete(queue)
        for key in r.scan_iter("LIMITER*"):
            r.delete(key)
        drop_pg_database(db_name)
        shutil.rmtree(instance, ignore_errors=True)

    results["config"] = {"duration_s": args.duration, "connections": args.connections,
                         "paced_rate": args.rate, "paced_connections": args.paced_connections,
                         "wrk_threads": args.threads, "gunicorn_workers": args.workers,
                         "gunicorn_threads": args.worker_threads, "signup_min_seconds": args.min_seconds,
                         "database": "postgresql", "limiter_storage": "redis",
                         "cpus": os.cpu_count(), "at": datetime.now(UTC).isoformat()}
    out = ROOT / "bench" / "results" / "web.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    signup: dict[str, float] = results["signup"]  # type: ignore[assignment]
    paced: dict[str, float] = results[f"signup_at_{args.rate}_per_s"]  # type: ignore[assignment]
    print(f"\nsignups: {signup['requests_per_second']}/s at saturation (p99 {signup['p99_ms']} ms); "
          f"offered {args.rate}/s: served {paced['requests_per_second']}/s, p50 {paced['p50_ms']} ms, "
          f"p99 {paced['p99_ms']} ms   (target >= 300/s with p99 < 100 ms)  -> {out}")
    print(f"CPU per signup in gunicorn: {signup['gunicorn_cpu_ms_per_request']} ms; "
          f"1-minute load average on this {os.cpu_count()}-core machine: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
