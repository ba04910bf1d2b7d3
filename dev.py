#!/usr/bin/env python3
"""The two Quick start commands, for a fresh machine with Python 3.11+.

    python3 dev.py run    set up, migrate, seed demo content (empty database only),
                          say where the console is, start web + worker + beat
    python3 dev.py test   set up and run the whole test suite (arguments go to pytest)

Only the standard library is used here: this file creates the environment.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def sh(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, env=env)


def ensure_env(extras: str) -> dict[str, str]:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before anything is checked
        raise SystemExit("Python 3.11 or newer is required.")
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        target = f".[{extras}]" if extras else "."
        sh(PY, "-m", "pip", "install", "--quiet", "-e", target)
        stamp.write_text(digest)
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    return env


def run() -> None:
    env = ensure_env("")
    sh(BIN / "flask", "--app", "mailer", "db", "upgrade", env=env)
    sh(BIN / "flask", "--app", "mailer", "demo", env=env)
    print(flush=True)
    sh(BIN / "flask", "--app", "mailer", "welcome", env=env)
    print("\nStarting web, worker and beat. Ctrl-C stops.\n", flush=True)
    os.chdir(ROOT)
    os.execve(str(BIN / "honcho"), ["honcho", "start", "web", "worker", "beat"], env)  # noqa: S606


def test(pytest_args: list[str]) -> None:
    env = ensure_env("test")
    sh(PY, "-m", "pytest", *pytest_args, env=env)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "test"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "run":
        run()
    else:
        try:
            test(sys.argv[2:])
        except subprocess.CalledProcessError as exc:
            raise SystemExit(exc.returncode) from None


if __name__ == "__main__":
    main()
