"""Summarise py-spy raw profiles (`bench/run.py send --profile`, `web --profile`).

    .venv/bin/python bench/profile_summary.py bench/results/send-profile-*.txt --within run_lane

Prints, for stacks that pass through `--within`, the share of samples per
function (inclusive) and per innermost frame (own). Samples whose innermost frame
is a known wait (poll, select, sleep, socket reads) are counted apart: py-spy
cannot always tell waiting from working, and those would drown the rest.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

WAITS = ("Connection.wait", "EpollSelector.select", "select (selectors", "_read_from_socket",
         "sleep", "socket.recv", "SocketIO.readinto", "PollableMethodQueue.defer", "poll (")
LINE_NUMBER = re.compile(r":\d+\)")


def summarise(paths: list[Path], within: str, top: int) -> None:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    working = waiting = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit() or within not in stack:
                continue
            n = int(count)
            frames = [LINE_NUMBER.sub(")", f) for f in stack.split(";")]
            if any(w in frames[-1] for w in WAITS):
                waiting += n
                continue
            working += n
            own[frames[-1]] += n
            start = next((i for i, f in enumerate(frames) if within in f), 0)
            for frame in set(frames[start:]):
                inclusive[frame] += n
    if not working:
        raise SystemExit(f"no samples pass through {within!r}")
    print(f"{working} samples working, {waiting} waiting (poll/select/sleep/socket reads)")
    print("\ninclusive (share of working samples)")
    for frame, n in inclusive.most_common(top):
        print(f"  {100 * n / working:5.1f}%  {frame}")
    print("\nown (innermost frame; C calls such as libpq or sendall count here)")
    for frame, n in own.most_common(top):
        print(f"  {100 * n / working:5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--within", default="", help="keep stacks through this frame")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    summarise(args.files, args.within, args.top)


if __name__ == "__main__":
    main()
