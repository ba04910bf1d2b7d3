"""SpamAssassin 4, offline (`spamassassin -L -t`, Bayes off), scores every message
type the product sends at 0.0 or below."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from mailer import delivery, editions
from mailer.readers.confirmations import build_message
from tests.services.test_delivery import planned_edition

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


@pytest.fixture
def spamassassin():
    if SPAMASSASSIN is None:
        if os.environ.get("CI"):
            pytest.fail("spamassassin is missing; CI requires it (Debian spamassassin)")
        pytest.skip("spamassassin is not installed (Debian spamassassin)")


@pytest.mark.parametrize("tracking", [False, True])
def test_every_message_type_scores_zero_or_below(session, rt, sender, dispatch, settings_override,
                                                 spamassassin, tmp_path, tracking):
    settings_override(tracking=tracking, return_path="bounces@mailer.test",
                      unsubscribe_mailto="unsubscribe@mailer.test")
    edition = planned_edition(session, rt, readers=1)
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, None))
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
        value, status = score(raw, tmp_path)
        assert value <= 0.0, (kind, status)
