"""SpamAssassin 4, offline (`spamassassin -L -t`, Bayes off), scores every message
type the product sends at 0.0 or below."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailer import delivery, editions
from mailer.mail import dkim_signer
from mailer.readers.confirmations import build_message
from tests.support import factories

SPAMASSASSIN = shutil.which("spamassassin")


def score(raw: bytes, home) -> tuple[float, str]:
    # A delivered message carries the envelope sender; SpamAssassin looks for it.
    proc = subprocess.run(
        [SPAMASSASSIN, "-L", "-t", "--cf=use_bayes 0", "--cf=use_auto_whitelist 0"],
        input=b"Return-Path: <bounces@mailer.test>\r\n" + raw, capture_output=True, timeout=120,
        env={**os.environ, "HOME": str(home)},
    )
    status = re.search(rb"X-Spam-Status: \w+, score=(-?[0-9.]+)[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*",
                       proc.stdout)
    assert status, proc.stdout[-2000:] + proc.stderr[-2000:]
    return float(status.group(1)), status.group(0).decode()


TITLES = ["Council approves the harbour wall rebuild", "New library opens on Market Street",
          "Rail line to the coast reopens after repairs", "School meals get local produce",
          "Ferry timetable changes for the winter", "Museum shows a century of photographs",
          "Cyclists get a safer route into town", "Flood defences tested at high tide",
          "Farmers market moves to the old station", "Choir wins the regional festival"]


def full_edition(session, rt):
    """A ten-article digest (the usual size) for one reader, planned."""
    topic = factories.topic(session)
    factories.reader(session, topics=[topic], name="Ann Example")
    for title in TITLES:
        row = factories.article(session, topics=[topic], title=title)
        row.summary = (f"{title}. Residents were asked for their views over the summer and "
                       "the plan was changed twice; work starts next month and should end "
                       "before the spring.")
        row.author = "Sam Reporter"
        row.image_url = f"https://news.example.org/img/{row.id}.jpg"
    session.commit()
    digest = factories.digest(session, name="Morning Brief", topics=[topic], max_articles=10)
    edition = editions.start_edition(session, digest.name)
    assert editions.prepare_edition(session, rt.settings, edition.id) == 1
    return edition


@pytest.fixture
def spamassassin():
    if SPAMASSASSIN is None:
        if os.environ.get("CI"):
            pytest.fail("spamassassin is missing; CI requires it (Debian spamassassin)")
        pytest.skip("spamassassin is not installed (Debian spamassassin)")


@pytest.mark.parametrize(("tracking", "signed"), [(False, False), (True, False), (False, True)])
def test_every_message_type_scores_zero_or_below(session, rt, sender, dispatch, settings_override,
                                                 spamassassin, tmp_path, tracking, signed):
    settings_override(tracking=tracking, return_path="bounces@mailer.test",
                      unsubscribe_mailto="unsubscribe@mailer.test")
    if signed:
        key = tmp_path / "dkim.pem"
        key.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                        .private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        settings_override(dkim_selector="news", dkim_private_key_path=str(key))
    edition = full_edition(session, rt)
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, dkim_signer(rt.settings)))
    messages = {"digest": sender.messages[-1][2]}
    if not tracking:
        values = {"name": "Ann Example", "email": "ann@example.org", "greeting": "Hello Ann,",
                  "confirm_url": "http://mailer.test/confirm/r1.abcdefghijklmnopqrstuv",
                  "unsubscribe_url": "", "preferences_url": ""}
        for template in ("confirm", "change-email"):
            messages[template] = build_message(rt.settings, "Ann Example", "ann@example.org",
                                               template, values)
        editions.test_send(session, rt.settings, sender, edition.digest_id, ["ed@example.org"])
        messages["test-send"] = sender.messages[-1][2]
    for kind, raw in messages.items():
        assert (b"DKIM-Signature:" in raw) == signed, kind
        value, status = score(raw, tmp_path)
        print(f"{kind} ({len(raw):,} bytes): {' '.join(status.split())}")  # shown with -s
        assert value <= 0.0, (kind, status)
