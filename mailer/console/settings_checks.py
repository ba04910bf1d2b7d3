"""Checks an editor can run from the console: is the SMTP relay reachable, does the
DKIM key match the DNS record text they paste."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path

from mailer.config import Settings
from mailer.delivery import check_bounce_mailbox
from mailer.mail.senders import SmtpTarget

CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def check_smtp(smtp_url: str, timeout: float = CHECK_TIMEOUT) -> CheckResult:
    """Connect and EHLO (STARTTLS when configured); nothing is sent."""
    if not smtp_url:
        return CheckResult(True, "No MAILER_SMTP_URL: messages go to the outbox folder.")
    try:
        target = SmtpTarget.from_url(smtp_url)
    except ValueError as exc:
        return CheckResult(False, str(exc))
    try:
        if target.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout,
                                                   context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=timeout)
        try:
            code, banner = client.ehlo()
            if code != 250:
                return CheckResult(False, f"EHLO answered {code} {banner.decode(errors='replace')}")
            if target.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            name = banner.decode(errors="replace").splitlines()[0] if banner else ""
            return CheckResult(True, f"{target.host}:{target.port} answered EHLO: {name}")
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return CheckResult(False, f"{target.host}:{target.port}: {exc or type(exc).__name__}")


def _txt_value(pasted: str) -> str:
    """Accept the record as DNS tools show it: quoted chunks, a name in front, etc."""
    text = pasted.strip()
    if "v=DKIM1" in text and not text.startswith("v="):
        text = text[text.index("v=DKIM1"):]
    chunks = [part for part in text.replace("\n", " ").split('"') if part.strip()]
    joined = "".join(chunks) if '"' in pasted else text
    return " ".join(joined.split()).rstrip(")").strip()


def check_dkim(private_key_path: str, selector: str, domain: str, pasted: str) -> CheckResult:
    """Sign a probe message with our key and verify it against the pasted TXT text."""
    if not (private_key_path and selector and domain):
        return CheckResult(False, "DKIM is not configured (MAILER_DKIM_SELECTOR, "
                                  "MAILER_DKIM_PRIVATE_KEY, MAILER_DKIM_DOMAIN or MAILER_FROM).")
    record = _txt_value(pasted)
    if "p=" not in record:
        return CheckResult(False, "The text has no public key (p=...).")
    import dkim

    try:
        key = Path(private_key_path).read_bytes()
    except OSError as exc:
        return CheckResult(False, f"Cannot read the private key: {exc}")
    probe = (f"From: check@{domain}\r\nTo: check@{domain}\r\nSubject: DKIM check\r\n"
             f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nprobe\r\n").encode()
    try:
        signature = dkim.sign(probe, selector.encode(), domain.encode(), key,
                              include_headers=[b"from", b"to", b"subject", b"date"])
    except Exception as exc:  # dkimpy raises several types for bad keys
        return CheckResult(False, f"The private key cannot sign: {exc}")
    expected = f"{selector}._domainkey.{domain}."

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record.encode() if name.decode().rstrip(".") == expected.rstrip(".") else b""

    try:
        ok = dkim.verify(signature + probe, dnsfunc=dns)
    except Exception as exc:
        return CheckResult(False, f"The record cannot be used: {exc}")
    if ok:
        return CheckResult(True, f"The key matches the record for {expected}")
    return CheckResult(False, f"The public key in the text does not match the private key "
                              f"(publish it at {expected}).")


def check_bounces(settings: Settings) -> CheckResult:
    """Log in to the bounce mailbox (MAILER_BOUNCE_MAILBOX) and open its folder."""
    ok, message = check_bounce_mailbox(settings)
    return CheckResult(ok, message)
