"""A real authoritative DNS server (NLnet Labs' NSD) on loopback, serving zone files a
test writes, for the console's DNS checks. Runs as the current user on a free high port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

NSD = shutil.which("nsd") or "/usr/sbin/nsd"
CHECKCONF = shutil.which("nsd-checkconf") or "/usr/sbin/nsd-checkconf"


@dataclass(frozen=True)
class Nsd:
    root: Path
    port: int

    @property
    def resolver(self) -> tuple[str, int]:
        return "127.0.0.1", self.port


def _free_port() -> int:
    """A port free for both UDP and TCP (NSD listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port for NSD")


def _config(root: Path, port: int, zones: Mapping[str, str]) -> str:
    lines = [
        "server:",
        "    server-count: 1",
        f"    ip-address: 127.0.0.1@{port}",
        "    do-ip6: no",
        f'    zonesdir: "{root}"',
        '    username: ""',
        '    chroot: ""',
        f'    pidfile: "{root}/nsd.pid"',
        f'    logfile: "{root}/nsd.log"',
        f'    xfrdfile: "{root}/xfrd.state"',
        f'    xfrdir: "{root}"',
        f'    zonelistfile: "{root}/zone.list"',
        '    database: ""',
        "    verbosity: 1",
        "remote-control:",
        "    control-enable: no",
    ]
    for zone in zones:
        lines += ["zone:", f"    name: {zone}", f'    zonefile: "{zone}.zone"']
    return "\n".join(lines) + "\n"


def _answers(port: int) -> bool:
    """True once NSD answers a query on UDP (any answer, REFUSED included)."""
    import dns.message
    import dns.query

    try:
        dns.query.udp(dns.message.make_query("probe.invalid.", "A"), "127.0.0.1",
                      timeout=0.3, port=port)
        return True
    except Exception:
        return False


def nsd_server(root: Path, zones: Mapping[str, str]) -> Iterator[Nsd]:
    """Start NSD serving `zones` ({origin: zone file text}); stop it afterwards."""
    if not Path(NSD).exists():
        message = "nsd is not installed (Debian package nsd)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    root.mkdir(parents=True, exist_ok=True)
    for origin, text in zones.items():
        (root / f"{origin}.zone").write_text(text)
    port = _free_port()
    config = root / "nsd.conf"
    config.write_text(_config(root, port, zones))
    if Path(CHECKCONF).exists():
        check = subprocess.run([CHECKCONF, str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            pytest.fail(f"nsd.conf refused: {check.stdout}{check.stderr}")
    # -d: in the foreground, so this Popen is NSD's main process and we stop it.
    with open(root / "stderr.log", "wb") as err:
        proc = subprocess.Popen([NSD, "-d", "-c", str(config)], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err)
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (root / "nsd.log").read_text() if (root / "nsd.log").exists() else ""
                pytest.fail(f"nsd did not start: {(root / 'stderr.log').read_text()}\n"
                            f"{log[-2000:]}")
            time.sleep(0.05)
        yield Nsd(root, port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
