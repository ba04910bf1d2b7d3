#!/usr/bin/env python3
"""Before/after in one run: a benchmark on an older commit and on this tree, interleaved.

    .venv/bin/python bench/compare.py --ref 60f320b --rounds 2 send --readers 20000
    .venv/bin/python bench/compare.py --ref HEAD~3 render

The older commit is checked out into a temporary folder (`git worktree add --detach`)
and run with this venv, its own tree first on PYTHONPATH. Rounds alternate old, new,
old, new… so that a noisy, shared machine weighs on both alike; only the ratios are
worth quoting. Prints the figures per round and the ratio of medians, and writes
bench/results/compare-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# The figures worth comparing, per benchmark (higher is better unless marked "lower").
FIGURES: dict[str, dict[str, str]] = {
    "send": {"end_to_end_messages_per_second": "higher", "send_phase_messages_per_second": "higher",
             "message_bytes": "lower"},
    "render": {"compile_ms_10_articles": "lower", "fill_us_per_reader": "lower",
               "planning_seconds": "lower", "render_seconds": "lower"},
}


def _flatten(data: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
    elif isinstance(data, int | float) and not isinstance(data, bool):
        out[prefix.rstrip(".")] = float(data)
    return out


def _pick(result: dict[str, Any], wanted: dict[str, str]) -> dict[str, float]:
    flat = _flatten(result)
    picked: dict[str, float] = {}
    for name in wanted:
        matches = [k for k in flat if k == name or k.endswith("." + name)]
        if matches:
            picked[name] = flat[matches[0]]
    return picked


def run_once(tree: Path, name: str, args: list[str]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = tree / "bench" / "results" / f"{name}.json"
    out.unlink(missing_ok=True)
    subprocess.run([sys.executable, str(tree / "bench" / "run.py"), name, *args],
                   cwd=tree, env=env, check=True)
    return dict(json.loads(out.read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ref", required=True, help="the older commit to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("name", choices=sorted(FIGURES))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    opts = parser.parse_args()

    old = Path(tempfile.mkdtemp(prefix="bench-old-"))
    shutil.rmtree(old)
    subprocess.run(["git", "worktree", "add", "--detach", str(old), opts.ref], cwd=ROOT, check=True)
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    try:
        for round_no in range(1, opts.rounds + 1):
            for label, tree in (("old", old), ("new", ROOT)):
                print(f"== round {round_no}: {label} ({tree})", flush=True)
                figures = _pick(run_once(tree, opts.name, opts.args), FIGURES[opts.name])
                runs[label].append(figures)
                print(f"   {label}: {figures}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)

    summary: dict[str, dict[str, float]] = {}
    for figure, better in FIGURES[opts.name].items():
        olds = [r[figure] for r in runs["old"] if figure in r]
        news = [r[figure] for r in runs["new"] if figure in r]
        if not olds or not news:
            continue
        old_median, new_median = statistics.median(olds), statistics.median(news)
        ratio = new_median / old_median if old_median else float("nan")
        summary[figure] = {"old": old_median, "new": new_median, "new_over_old": round(ratio, 3)}
        print(f"{figure:40s} old {old_median:>12,.3f}  new {new_median:>12,.3f}  "
              f"new/old {ratio:.3f} ({better} is better)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"compare-{opts.name}.json"
    path.write_text(json.dumps({"ref": opts.ref, "rounds": opts.rounds, "args": opts.args,
                                "runs": runs, "summary": summary}, indent=2))
    print(f"JSON {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
