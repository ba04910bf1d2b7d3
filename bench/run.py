#!/usr/bin/env python3
"""One entry point for every benchmark.

    .venv/bin/python bench/run.py send [--readers 20000 ...]
    .venv/bin/python bench/run.py render | web | console | broker | dkim [...]
    .venv/bin/python bench/run.py render | web | console | broker | faults [...]
    .venv/bin/python bench/run.py pow      # the signup proof of work in Chromium
    .venv/bin/python bench/run.py all      # each with its defaults, one after another

Each benchmark prints its figures and writes bench/results/<name>.json.
Needs PostgreSQL and Redis on 127.0.0.1 (send, web, console), Postfix's smtp-sink
(send; a Python sink otherwise) and wrk (web).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "send": HERE / "send.py",
    "render": HERE / "render.py",
    "web": HERE / "web" / "run.py",
    "console": HERE / "console" / "run.py",
    "broker": HERE / "broker.py",
    "dkim": HERE / "dkim_sign.py",
    "faults": HERE / "faults.py",
    "automations": HERE / "automations.py",
    "segments": HERE / "segments.py",
    "abtest": HERE / "abtest.py",
    "pow": HERE / "pow.py",
    "zones": HERE / "zones.py",
    "inactive": HERE / "inactive.py",
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in (*SCRIPTS, "all"):
        print(__doc__)
        return 2
    names = list(SCRIPTS) if sys.argv[1] == "all" else [sys.argv[1]]
    status = 0
    for name in names:
        print(f"== bench {name}", flush=True)
        result = subprocess.run([sys.executable, str(SCRIPTS[name]), *sys.argv[2:]],
                                cwd=HERE.parent, check=False)
        status = status or result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
