"""Checks an editor can run from the console: is the SMTP relay reachable, does the
DKIM key match the DNS record text they paste."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mailer.config import Settings
from mailer.delivery import check_bounce_mailbox
from mailer.mail.senders import SmtpSender, parse_relays

CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def check_smtp(smtp_url: str, timeout: float = CHECK_TIMEOUT) -> CheckResult:
    """Connect to every relay listed: EHLO, STARTTLS and login when configured, NOOP.
    Nothing is sent. A wrong password or an unusable URL fails with the reason."""
    if not smtp_url:
        return CheckResult(True, "No MAILER_SMTP_URL: messages go to the outbox folder.")
    try:
        targets = parse_relays(smtp_url)
    except ValueError as exc:
        return CheckResult(False, str(exc))
    answers, ok = [], True
    for target in targets:
        sender = SmtpSender(replace(target, timeout=min(target.timeout, timeout)))
        failure = sender.probe()
        sender.close()
        if failure is None:
            answers.append(f"{target.name} answered EHLO" + (" and accepted the login"
                                                        if target.username else ""))
        else:
            ok = False
            answers.append(f"{target.name}: {failure.message}")
    return CheckResult(ok, "; ".join(answers))


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
