"""What the signup proof of work costs a real browser: Debian's Chromium solves
fresh challenges from the running app (`MAILER_SIGNUP_CHALLENGE=always`) the way
readers' browsers do, on our subscribe page (in a Web Worker) and in the snippet
pasted into a page of another origin (on the page, no worker).

    .venv/bin/python bench/pow.py [--challenges 20] [--difficulty 25000]

Prints median, p95 and max solve time per path and writes bench/results/pow.json.
Each time is taken by the page script itself, from the start of the work (workers
started) to the answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import http.server
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade
from werkzeug.serving import make_server

from bench.common import write_result
from mailer import create_app
from mailer.config import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-sync"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def figures(samples: list[dict[str, Any]]) -> dict[str, float]:
    ms = [float(s["ms"]) for s in samples]
    return {"median_ms": statistics.median(ms), "p95_ms": percentile(ms, 0.95),
            "max_ms": max(ms), "mean_ms": statistics.fmean(ms)}


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def solve_once(page: Any, url: str, form: str, trigger: str | None) -> dict[str, Any]:
    page.goto(url)
    if trigger:
        page.focus(trigger)  # the snippet asks for its challenge when the reader starts
    done = page.locator(f"{form}[data-challenge-state=done]")
    done.wait_for(timeout=60_000)
    return {"ms": float(done.get_attribute("data-challenge-ms") or 0),
            "answer": int(page.locator(f"{form} input[name=solution]").input_value()),
            "where": done.get_attribute("data-challenge-where") or ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--challenges", type=int, default=20)
    parser.add_argument("--difficulty", type=int, default=Settings.signup_challenge_difficulty)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    scratch = Path(tempfile.mkdtemp(prefix="bench-pow-"))
    app = create_app(ratelimit=False, instance_path=scratch, broker_url="memory://",
                     database_url=f"sqlite:///{scratch / 'pow.db'}", secret_key="bench",
                     smtp_url="", signup_challenge="always",
                     signup_challenge_difficulty=args.difficulty)
    with app.app_context():
        upgrade()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    rt = app.extensions["mailer"]
    rt.settings = dataclasses.replace(rt.settings, base_url=base)  # the snippet's links
    snippet = app.test_client().get("/subscribe/snippet").get_data(as_text=True)
    (scratch / "article.html").write_text(
        f'<!doctype html><html lang="en"><title>Article</title><body><h1>Article</h1>{snippet}')
    other = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(scratch)))
    threading.Thread(target=other.serve_forever, daemon=True).start()
    article = f"http://localhost:{other.server_address[1]}/article.html"  # another origin

    results: dict[str, list[dict[str, Any]]] = {"form_worker": [], "snippet_page": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        version = browser.version
        page = browser.new_page()
        solve_once(page, f"{base}/subscribe", "form[data-challenge]", None)  # warm-up
        started = time.monotonic()
        for _ in range(args.challenges):
            results["form_worker"].append(
                solve_once(page, f"{base}/subscribe", "form[data-challenge]", None))
            results["snippet_page"].append(
                solve_once(page, article, "form.newsletter-signup", "#newsletter-email"))
        wall = time.monotonic() - started
        browser.close()
    server.shutdown()
    other.shutdown()

    summary = {name: figures(samples) for name, samples in results.items()}
    print(f"signup proof of work, difficulty {args.difficulty} (expected {args.difficulty / 2:,.0f} "
          f"hashes, at most {args.difficulty:,}), {args.challenges} challenges per path, "
          f"Chromium {version}, {os.cpu_count()} CPUs")
    for name, fig in summary.items():
        print(f"  {name:13} median {fig['median_ms']:6.0f} ms   p95 {fig['p95_ms']:6.0f} ms   "
              f"max {fig['max_ms']:6.0f} ms")
    print(f"  wall time {wall:.1f} s")
    path = write_result("pow", {"difficulty": args.difficulty, "challenges": args.challenges,
                                "chromium": version, "cpus": os.cpu_count(), "summary": summary,
                                "samples": results})
    print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
