"""Amazon SNS message signatures, so SES notifications can be trusted without a
shared secret in the subscription URL.

SNS signs the canonical form of each message with the key of the certificate it
publishes at `SigningCertURL` (SignatureVersion 1: RSA with SHA-1, 2: RSA with
SHA-256). We fetch certificates only from `https://sns.<region>.amazonaws.com/…pem`
and keep them per URL. A valid signature proves the message came from SNS, not
that it came from *our* topic (AWS signs every account's topics alike), so the
topic must also be one of `MAILER_SNS_TOPIC_ARNS`.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from mailer.common.errors import ValidationError

# The fields SNS signs, in this order, per message type ("Subject" only when present).
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
MAX_CERTIFICATE_BYTES = 64 * 1024

_certificates: dict[str, bytes] = {}
_lock = threading.Lock()


class SignatureError(ValidationError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, {field: "signature check failed"}, status=403)


def string_to_sign(envelope: Mapping[str, Any]) -> bytes:
    kind = envelope.get("Type")
    fields = SIGNED_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise SignatureError("Unknown SNS message Type.", "Type")
    parts = []
    for name in fields:
        value = envelope.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise SignatureError(f"The signed field {name} is missing.", name)
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


# One region label only: `sns.<anything>.amazonaws.com` would also match S3 bucket
# hosts such as `sns.example.s3.amazonaws.com`, where anyone can put a certificate.
_SNS_HOST_RE = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")


def is_sns_url(url: object) -> bool:
    """An https URL on an Amazon SNS regional endpoint, with nothing in front of the host."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return (parts.scheme == "https" and bool(_SNS_HOST_RE.fullmatch(parts.hostname or ""))
            and "@" not in parts.netloc and parts.port in (None, 443))


def is_certificate_url(url: object) -> bool:
    return is_sns_url(url) and urlsplit(str(url)).path.endswith(".pem")


def fetch_certificate(url: str) -> bytes:
    """GET the PEM certificate (tests replace this function)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - checked SNS https URL
        data: bytes = response.read(MAX_CERTIFICATE_BYTES + 1)
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise OSError("certificate too large")
    return data


def _certificate(url: str, fetch: Callable[[str], bytes]) -> bytes:
    with _lock:
        cached = _certificates.get(url)
    if cached is not None:
        return cached
    try:
        pem = fetch(url)
    except OSError as exc:
        raise ValidationError(f"Could not fetch the SNS signing certificate: {exc}",
                              {"SigningCertURL": "unreachable"}, status=502) from exc
    with _lock:
        if len(_certificates) > 32:
            _certificates.clear()
        _certificates[url] = pem
    return pem


def verify_sns_message(envelope: Mapping[str, Any], allowed_topics: Iterable[str],
           fetch: Callable[[str], bytes] | None = None) -> None:
    """Raise SignatureError unless `envelope` is signed by SNS for an allowed topic."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if envelope.get("TopicArn") not in set(allowed_topics):
        raise SignatureError("TopicArn is not one of MAILER_SNS_TOPIC_ARNS.", "TopicArn")
    version = envelope.get("SignatureVersion")
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 - the algorithm SNS uses for version 1
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise SignatureError("SignatureVersion must be 1 or 2.", "SignatureVersion")
    url = envelope.get("SigningCertURL")
    if not is_certificate_url(url):
        raise SignatureError("SigningCertURL is not an Amazon SNS https certificate URL.",
                             "SigningCertURL")
    try:
        signature = base64.b64decode(str(envelope.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("Signature is not base64.", "Signature") from exc
    data = string_to_sign(envelope)
    pem = _certificate(str(url), fetch or fetch_certificate)
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError as exc:
        raise SignatureError("The signing certificate cannot be read.", "SigningCertURL") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("The signing certificate has no RSA key.", "SigningCertURL")
    try:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise SignatureError("The SNS signature does not match the message.", "Signature") from exc
