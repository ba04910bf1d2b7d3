"""DKIM signatures (RFC 6376, RFC 8463), `c=relaxed/relaxed`, RSA and Ed25519 done by
OpenSSL through `cryptography`.

`DkimSigner.sign(raw)` signs any finished message: the one entry point for
one-off mails. Skeletons (messages.py) use the cheaper `signature_headers()`:
they already hold the canonical form of the headers every reader shares and a
body whose relaxed canonical form is the body itself (see `qp` there), so no
message is canonicalised twice.

Identity and list headers are over-signed: each is named in `h=` once more
than it occurs (absent ones once), so a header added in transit (a second
From or List-Unsubscribe prepended) breaks the signature.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

# Signed (and over-signed) in this order. MIME-Version and Content-Type too:
# changing them changes how the body is read.
SIGNED_HEADERS = (
    "from", "to", "subject", "date", "message-id", "reply-to",
    "list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id",
    "mime-version", "content-type",
)

_WSP_RUN = re.compile(r"[ \t]+")
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_BODY_TRAILING_WSP = re.compile(rb"[ \t]+(?=\r\n)")
_BODY_WSP_RUN = re.compile(rb"[ \t]+")


class DkimKeyError(ValueError):
    """A configured DKIM key cannot be read or is of the wrong type."""


def canonical_header(name: str, value: str) -> str:
    """Relaxed header canonicalisation of one field, CRLF-ended (RFC 6376 3.4.2)."""
    value = _WSP_RUN.sub(" ", _UNFOLD.sub("", value)).strip(" ")
    return f"{name.strip().lower()}:{value}\r\n"


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalisation (RFC 6376 3.4.4)."""
    body = _BODY_WSP_RUN.sub(b" ", _BODY_TRAILING_WSP.sub(b"", body))
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def body_hash(canonical: bytes) -> str:
    return base64.b64encode(hashlib.sha256(canonical).digest()).decode()


def split_message(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """(header fields as (name, value) with folding kept, body) of a CRLF message."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        head, body = raw, b""
    else:
        head, body = raw[: end + 2], raw[end + 4:]
    fields: list[tuple[str, str]] = []
    for line in head.decode("ascii", "replace").split("\r\n"):
        if not line:
            continue
        if line[0] in " \t" and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value}\r\n{line}")
        else:
            name, _, value = line.partition(":")
            fields.append((name, value))
    return fields, body


def canonical_fields(fields: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Canonical form of the signed header fields, by lower-case name, top to bottom."""
    found: dict[str, list[str]] = {}
    wanted = set(SIGNED_HEADERS)
    for name, value in fields:
        key = name.strip().lower()
        if key in wanted:
            found.setdefault(key, []).append(canonical_header(key, value))
    return found


def _load_private_key(data: bytes, what: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(stripped, password=None)
        except ValueError as exc:
            raise DkimKeyError(f"{what}: not a readable PEM private key ({exc})") from exc
    else:
        # dknewkey (dkimpy) writes an Ed25519 key as the base64 of its 32-byte seed.
        try:
            seed = base64.b64decode(stripped, validate=True)
        except ValueError as exc:
            raise DkimKeyError(f"{what}: neither PEM nor a base64 Ed25519 seed") from exc
        if len(seed) != 32:
            raise DkimKeyError(f"{what}: neither PEM nor a base64 Ed25519 seed")
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise DkimKeyError(f"{what}: only RSA and Ed25519 keys can sign DKIM")
    return key


class _Key:
    """One signature: its key, algorithm name and selector."""

    def __init__(self, key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, selector: str) -> None:
        self.key = key
        self.selector = selector
        self.algorithm = "rsa-sha256" if isinstance(key, rsa.RSAPrivateKey) else "ed25519-sha256"

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        # RFC 8463: Ed25519 (pure) over the SHA-256 of the canonical headers.
        return self.key.sign(hashlib.sha256(data).digest())

    def public_record(self) -> str:
        """The TXT record to publish at `<selector>._domainkey.<domain>`."""
        public = self.key.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def _fold_b64(value: str, width: int = 72) -> str:
    return "\r\n\t".join(value[i:i + width] for i in range(0, len(value), width))


class DkimSigner:
    """Signs messages for one domain with an RSA key and, optionally, an Ed25519 key."""

    def __init__(self, selector: str, domain: str, private_key: bytes,
                 ed25519_key: bytes | None = None, ed25519_selector: str = "") -> None:
        self.domain = domain
        self.selector = selector
        self.keys = [_Key(_load_private_key(private_key, "MAILER_DKIM_PRIVATE_KEY"), selector)]
        if ed25519_key:
            key = _load_private_key(ed25519_key, "MAILER_DKIM_ED25519_PRIVATE_KEY")
            if not isinstance(key, ed25519.Ed25519PrivateKey):
                raise DkimKeyError("MAILER_DKIM_ED25519_PRIVATE_KEY is not an Ed25519 key")
            self.keys.append(_Key(key, ed25519_selector or f"{selector}-ed25519"))

    @classmethod
    def from_files(cls, selector: str, domain: str, key_path: str, ed25519_path: str = "",
                   ed25519_selector: str = "") -> DkimSigner:
        try:
            key = Path(key_path).read_bytes()
            ed_key = Path(ed25519_path).read_bytes() if ed25519_path else None
        except OSError as exc:
            raise DkimKeyError(f"cannot read a DKIM key: {exc}") from exc
        return cls(selector, domain, key, ed_key, ed25519_selector)

    def public_records(self) -> dict[str, str]:
        """{selector: TXT record} of every key."""
        return {k.selector: k.public_record() for k in self.keys}

    def signature_headers(self, fields: Mapping[str, Sequence[str]], body_hash_b64: str,
                          timestamp: int | None = None) -> str:
        """The DKIM-Signature header line(s) to prepend, CRLF-ended.

        `fields`: canonical header fields (`canonical_header`) by lower-case name,
        in message order; `body_hash_b64`: SHA-256 of the relaxed canonical body."""
        signed: list[str] = []
        for name in SIGNED_HEADERS:
            present = fields.get(name, ())
            if present:
                signed.extend(reversed(present))
        h_tag = _h_tag(tuple(len(fields.get(name, ())) for name in SIGNED_HEADERS))
        signed_head = "".join(signed)
        stamp = int(time.time()) if timestamp is None else timestamp
        out = []
        for key in self.keys:
            head = (f"DKIM-Signature: v=1; a={key.algorithm}; c=relaxed/relaxed;\r\n"
                    f"\td={self.domain}; s={key.selector}; t={stamp};\r\n"
                    f"\th={h_tag};\r\n\tbh={body_hash_b64};\r\n\tb=")
            data = signed_head + canonical_header("dkim-signature", head[15:]).rstrip("\r\n")
            signature = base64.b64encode(key.sign(data.encode("ascii"))).decode()
            out.append(f"{head}{_fold_b64(signature)}\r\n")
        # RSA on top: the first signature verifiers check is the one every verifier knows.
        return "".join(out)

    def sign(self, raw: bytes) -> bytes:
        """`raw` (CRLF line ends) with DKIM-Signature header(s) prepended."""
        fields, body = split_message(raw)
        header = self.signature_headers(canonical_fields(fields), body_hash(canonical_body(body)))
        return header.encode("ascii") + raw


@functools.lru_cache(maxsize=8)
def load_signer(selector: str, domain: str, key_path: str, ed25519_path: str = "",
                ed25519_selector: str = "") -> DkimSigner | None:
    """The signer for these settings, read once per process; None when DKIM is off.
    Every sender of mail (lanes, one-off mails, test sends) gets its signer here."""
    if not (selector and key_path):
        return None
    return DkimSigner.from_files(selector, domain, key_path, ed25519_path, ed25519_selector)


@functools.lru_cache(maxsize=64)
def _h_tag(counts: tuple[int, ...]) -> str:
    """The folded `h=` list for these numbers of each signed header (the same for
    every message of a skeleton). Each name once more than it occurs: verifiers
    take instances bottom-up, so the extra name matches nothing here, and any
    instance added later above ours."""
    names: list[str] = []
    for name, count in zip(SIGNED_HEADERS, counts, strict=True):
        names.extend([name] * (count + 1))
    return _fold_names(names)


def _fold_names(names: list[str]) -> str:
    lines: list[str] = []
    line = ""
    for name in names:
        piece = f"{line}:{name}" if line else name
        if len(piece) > 66 and line:
            lines.append(line + ":")
            line = name
        else:
            line = piece
    lines.append(line)
    return "\r\n\t".join(lines)
