"""DKIM signing (dkimpy) of the cheap per-reader messages, verified offline, and
the optional mailto in List-Unsubscribe."""

from __future__ import annotations

import base64
import email
import subprocess
from email import policy
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select

from mailer import delivery
from mailer.mail.messages import DkimSigner, MessageSkeleton, Recipient
from mailer.models import Reader
from mailer.runtime import build_runtime
from tests.delivery.test_lane_and_sweeper import planned_edition


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("dkim")
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return key, base64.b64encode(der).decode()


def dns_for(public: str, name: bytes = b"news._domainkey.example.org."):
    def dnsfunc(qname: bytes, timeout: int = 5) -> bytes | None:
        if qname == name:
            return f"v=DKIM1; k=rsa; p={public}".encode()
        return None

    return dnsfunc


def skeleton(key: Path, mailto: str = "") -> MessageSkeleton:
    signer = DkimSigner("news", "example.org", key.read_bytes())
    return MessageSkeleton(subject="Morning digest", html="<p>%%greeting%%</p>",
                           text="%%greeting%%\n", mail_from="News <news@example.org>",
                           secret="s", edition_id=1, dkim=signer, unsubscribe_mailto=mailto)


def rcpt() -> Recipient:
    return Recipient(reader_id=5, email="ada@example.net", name="Ada",
                     unsubscribe_url="https://n.example/unsubscribe/r5.x",
                     preferences_url="https://n.example/preferences/r5.y")


def test_signed_message_verifies_offline_and_covers_the_required_headers(key_pair):
    key, public = key_pair
    raw = skeleton(key).render(rcpt())
    assert dkim.verify(raw, dnsfunc=dns_for(public))
    signature = email.message_from_bytes(raw, policy=policy.default)["DKIM-Signature"]
    tags = dict(part.strip().split("=", 1) for part in str(signature).split(";") if "=" in part)
    signed = {h.strip().lower() for h in tags["h"].replace(" ", "").split(":")}
    assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe",
            "list-unsubscribe-post"} <= signed
    assert tags["d"].strip() == "example.org" and tags["s"].strip() == "news"


def test_tampering_breaks_the_signature(key_pair):
    key, public = key_pair
    raw = skeleton(key).render(rcpt())
    assert not dkim.verify(raw.replace(b"Morning digest", b"Evening digest"),
                           dnsfunc=dns_for(public))
    assert not dkim.verify(raw.replace(b"unsubscribe/r5.x", b"unsubscribe/r6.x"),
                           dnsfunc=dns_for(public))


def test_mailto_unsubscribe_is_offered_next_to_the_url(key_pair):
    key, public = key_pair
    raw = skeleton(key, mailto="unsubscribe@example.org").render(rcpt())
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["List-Unsubscribe"] == ("<https://n.example/unsubscribe/r5.x>, "
                                       "<mailto:unsubscribe@example.org?subject=unsubscribe>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert dkim.verify(raw, dnsfunc=dns_for(public))


def test_the_lane_signs_with_the_configured_key(session, rt, sender, dispatch, key_pair):
    key, public = key_pair
    settings = rt.settings.__class__(**{**rt.settings.__dict__, "dkim_selector": "news",
                                        "dkim_domain": "mailer.test",
                                        "dkim_private_key_path": str(key)})
    signer = build_runtime(settings).dkim
    assert signer is not None
    edition = planned_edition(session, rt, readers=2)
    delivery.run_lane(session, edition.id, settings=settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(settings, signer))
    assert len(sender.messages) == 2
    for _, to, raw in sender.messages:
        assert session.scalar(select(Reader.id).where(Reader.email == to))
        assert dkim.verify(raw, dnsfunc=dns_for(public, b"news._domainkey.mailer.test."))
