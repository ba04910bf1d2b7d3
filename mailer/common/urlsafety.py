"""Fetching URLs that someone else chose (feeds, webhooks, SNS), without letting
them aim the server at itself or its network.

Every destination is resolved here and refused unless each address it resolves
to is a public one: loopback, private, link-local (cloud metadata), shared,
multicast, reserved and unspecified ranges are refused, for IPv4 and IPv6,
IPv4-mapped and embedded forms included. Numeric spellings (`0x7f000001`,
`2130706433`, `017700000001`) resolve to what they mean and are refused with the
rest. The connection then goes to the address that was checked (pinned: a second
DNS answer cannot swap it), with the name kept in `Host` and TLS SNI and
certificate checks. Redirects are followed by hand, each target checked the
same way. The whole fetch has one deadline (not one per read), and a size cap.

Every refused destination gets the same message, whatever the reason (bad
scheme, unknown name, private address), so errors cannot map the inside network.
`MAILER_ALLOW_PRIVATE_URLS=1` (`allow_private=True`) lets private addresses
through, for tests and intranets; resolution and pinning still apply.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

REFUSED = "This address cannot be fetched: only public http:// and https:// addresses are allowed."
REDIRECTS = (301, 302, 303, 307, 308)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BLOCKED_V4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4")]


class UnsafeURL(ValueError):
    """The destination is not allowed (always the same message)."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


class FetchError(Exception):
    """An allowed destination could not be fetched (timeout, size, not HTTP...)."""


@dataclass(frozen=True)
class FetchResult:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""
    url: str = ""  # after redirects


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _public(embedded)
    else:
        if any(ip in net for net in _BLOCKED_V4):
            return False
    return bool(ip.is_global) and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified
                                       or ip.is_loopback or ip.is_link_local or ip.is_private)


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # as sent in Host and SNI
    port: int
    path: str
    address: str  # the checked IP the connection goes to


def _resolve(url: str, allow_private: bool) -> _Target:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
    except (ValueError, UnicodeError) as exc:
        raise UnsafeURL() from exc
    if scheme not in ("http", "https") or not host or len(url) > 4000:
        raise UnsafeURL()
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeURL()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL() from exc
    addresses = []
    for info in infos:
        try:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        except ValueError as exc:
            raise UnsafeURL() from exc
        addresses.append(ip)
    # Every answer must be allowed: a name with one public and one private
    # address could otherwise be steered to either.
    if not addresses or not (allow_private or all(_public(ip) for ip in addresses)):
        raise UnsafeURL()
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        wire_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as exc:
        raise UnsafeURL() from exc
    return _Target(scheme, wire_host, port, path, str(addresses[0]))


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeURL unless `url` is http(s) and its host resolves only to
    allowed addresses. Connects to nothing."""
    _resolve(url, allow_private)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: _Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: _Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout,
                         context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        # Name checked in the certificate and sent as SNI; address pinned above.
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def _host_header(target: _Target) -> str:
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == default else f"{host}:{target.port}"


def fetch(url: str, *, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None, total_timeout: float = 15.0,
          max_bytes: int = 5_000_000, max_redirects: int = 5,
          follow: tuple[int, ...] = REDIRECTS, allow_private: bool) -> FetchResult:
    """One HTTP exchange (following redirects) to an allowed destination.

    Raises UnsafeURL for a refused destination (before connecting, or at a
    redirect) and FetchError when an allowed one fails. Any status is returned,
    4xx and 5xx included; a redirect beyond `max_redirects`, or with a status
    not in `follow` (e.g. only 307/308 for a POST that must keep its body), is
    returned as is.
    """
    deadline = time.monotonic() + total_timeout
    current = url
    for hop in range(max_redirects + 1):
        target = _resolve(current, allow_private)
        result = _exchange(target, current, method, body, headers or {}, deadline, max_bytes)
        location = result.headers.get("location", "")
        if result.status not in follow or not location or hop == max_redirects:
            return result
        current = urljoin(current, location)
        if result.status == 303 or (result.status in (301, 302) and method not in ("GET", "HEAD")):
            method, body = "GET", None
    return result  # pragma: no cover - the loop always returns


def _exchange(target: _Target, url: str, method: str, body: bytes | None,
              headers: dict[str, str], deadline: float, max_bytes: int) -> FetchResult:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError("the server took too long to answer")
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = cls(target, timeout=remaining)
    # One deadline for the whole exchange: a server dripping a byte at a time
    # never resets it; at the deadline the socket is shut and every read ends.
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(remaining, cut)
    timer.daemon = True
    timer.start()
    try:
        conn.putrequest(method, target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", _host_header(target))
        for name, value in headers.items():
            if name.lower() != "host":
                conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        declared = response.getheader("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"the answer is larger than the {max_bytes // 1024} KB limit")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"the answer is larger than the {max_bytes // 1024} KB limit")
            chunks.append(chunk)
        if expired.is_set():
            raise FetchError("the server took too long to answer")
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
        return FetchResult(response.status, answer_headers, b"".join(chunks), url)
    except FetchError:
        raise
    except ssl.SSLError as exc:
        raise FetchError(f"TLS failed: {exc.reason or exc}") from exc
    except (http.client.HTTPException, ValueError) as exc:
        if expired.is_set():
            raise FetchError("the server took too long to answer") from exc
        raise FetchError("the server did not answer with HTTP") from exc
    except OSError as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            raise FetchError("the server took too long to answer") from exc
        raise FetchError(f"could not connect: {exc.strerror or exc}") from exc
    finally:
        timer.cancel()
        conn.close()
