"""The one HTTP call webhooks make, behind `_post`, with its address check.

Every address a host name resolves to must be public (not loopback, private,
link-local, multicast, reserved or unspecified) unless private addresses are
allowed, and the connection goes to the address that was checked (no second DNS
lookup an attacker could answer differently). Redirects are not followed: a
3xx is a failed call, so a redirect can never lead to an internal address.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnsafeURL(ValueError):
    """The URL is not http(s), does not resolve, or points at a non-public address."""


@dataclass(frozen=True)
class PostResult:
    status: int | None  # None: no HTTP answer (refused, timeout, unsafe address)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_checked(url: str, *, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to); raises UnsafeURL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("must be an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("has an invalid port") from exc
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"host {parts.hostname} does not resolve") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeURL(f"host {parts.hostname} does not resolve")
    if not allow_private:
        blocked = [a for a in addresses if not _public(a)]
        if blocked:
            raise UnsafeURL(f"host {parts.hostname} resolves to a non-public address ({blocked[0]})")
    return parts.scheme, parts.hostname, port, addresses[0]


def check_url(url: str, *, allow_private: bool) -> None:
    resolve_checked(url, allow_private=allow_private)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the certificate checked for the host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _post(url: str, body: bytes, headers: dict[str, str], allow_private: bool, *,
          timeout: float = 10.0, max_bytes: int = 64_000) -> PostResult:
    """POST `body` to `url`; never raises. `timeout` bounds the whole call."""
    deadline = time.monotonic() + timeout
    try:
        scheme, host, port, address = resolve_checked(url, allow_private=allow_private)
    except UnsafeURL as exc:
        return PostResult(None, f"refused: {exc}")
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = _PinnedHTTPS(host, address, port, timeout)
    else:
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        default_port = 443 if scheme == "https" else 80
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
        conn.putheader("Host", name if port == default_port else f"{name}:{port}")
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        read = 0
        while read < max_bytes:  # drain a little of the answer, within the deadline
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if conn.sock is not None:
                conn.sock.settimeout(left)
            chunk = response.read(min(8192, max_bytes - read))
            if not chunk:
                break
            read += len(chunk)
        status = response.status
        if 300 <= status < 400:
            location = response.getheader("Location", "")[:200]
            return PostResult(status, f"redirect to {location!r} not followed")
        return PostResult(status, "" if 200 <= status < 300 else f"HTTP {status}")
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        return PostResult(None, f"{type(exc).__name__}: {exc}"[:300] or "connection failed")
    finally:
        conn.close()
