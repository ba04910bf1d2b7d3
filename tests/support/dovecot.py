"""A real Dovecot (IMAP and POP3, plain and TLS) on loopback, with a temporary
config and a local Maildir, for the bounce-mailbox tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "s3cret-pass"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    maildir: Path
    ports: dict[str, int]

    def url(self, scheme: str, password: str = PASSWORD) -> str:
        query = "?verify=0" if scheme.endswith("s") else ""
        return f"{scheme}://{USER}:{password}@127.0.0.1:{self.ports[scheme]}/INBOX{query}"

    def deliver(self, raw: bytes) -> str:
        """Drop a message into the Maildir as a local delivery would."""
        name = f"{time.time_ns()}.{uuid.uuid4().hex[:8]}.test"
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, 65534, 65534) if os.geteuid() == 0 else None
        tmp.rename(self.maildir / "new" / name)
        return name

    def count(self) -> int:
        return sum(1 for sub in ("new", "cur") for _ in (self.maildir / sub).iterdir())

    def clear(self) -> None:
        for sub in ("new", "cur"):
            for path in (self.maildir / sub).iterdir():
                path.unlink()


def _config(root: Path, ports: dict[str, int], uid: int, gid: int) -> str:
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
mail_location = maildir:{root}/Maildir
first_valid_uid = {uid}
last_valid_uid = {uid}
default_login_user = dovenull
default_internal_user = dovecot
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {ports["pop3"]}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {ports["pop3s"]}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _wait(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_dovecot(root: Path) -> Iterator[Dovecot]:
    if not Path(DOVECOT).exists():
        message = "dovecot is not installed (Debian dovecot-imapd, dovecot-pop3d)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    uid, gid = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    ports = {name: _free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
    for sub in ("run", "state", "home", "Maildir/new", "Maildir/cur", "Maildir/tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(root / "key.pem"),
                    "-out", str(root / "cert.pem")], check=True, capture_output=True)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    if os.geteuid() == 0:
        for path in [root / "home", *(root / "Maildir").rglob("*"), root / "Maildir"]:
            os.chown(path, uid, gid)
    config = root / "dovecot.conf"
    config.write_text(_config(root, ports, uid, gid))
    # -F: in the foreground, so this Popen is the master process and we stop it.
    with open(root / "stderr.log", "wb") as err:
        proc = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err)
    try:
        if not (_wait(ports["imap"]) and _wait(ports["pop3"])):
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            pytest.fail(f"dovecot did not start: {(root / 'stderr.log').read_text()}\n"
                        f"{log[-2000:]}")
        yield Dovecot(root, root / "Maildir", ports)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def dovecot_server() -> Iterator[Dovecot]:
    """For a module-scoped fixture: a Dovecot under a folder its own users can read
    (not pytest's 0700 temporary folders)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="mailer-dovecot-"))
    root.chmod(0o755)
    try:
        yield from start_dovecot(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
