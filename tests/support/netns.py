"""Worker hosts for tests: Linux network namespaces joined to this machine by veth
pairs, with TCP forwarders so that processes inside reach PostgreSQL, Redis and the
SMTP server of the test over a real (virtual) network, at the host's veth address.

Needs root and iproute2 (`ip netns`); `available()` says whether this machine can.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterable


def available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"probe-{uuid.uuid4().hex[:6]}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True)


class Host:
    """One namespace `name` with address `10.<net>.<index>.2`, reaching this machine at `.1`."""

    def __init__(self, net: int, index: int) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"mh{tag}{index}"
        self.host_if, self.ns_if = f"vh{tag}{index}", f"vn{tag}{index}"
        self.host_ip = f"10.{net}.{index}.1"
        self.ns_ip = f"10.{net}.{index}.2"

    def create(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if, netns=self.name)
        _ip("link", "set", self.ns_if, "up", netns=self.name)
        _ip("link", "set", "lo", "up", netns=self.name)

    def destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def command(self, args: Iterable[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]


class Forwarder:
    """Listens on (address, port) pairs and copies bytes to 127.0.0.1:<target port>,
    counting connections per listening address (which host talked)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[asyncio.AbstractServer] = []
        self.connections: Counter[tuple[str, int]] = Counter()

    def __enter__(self) -> Forwarder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def forward(self, address: str, port: int, target_port: int) -> None:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections[(address, port)] += 1
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def start() -> None:
            self.servers.append(await asyncio.start_server(handle, address, port))

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)
