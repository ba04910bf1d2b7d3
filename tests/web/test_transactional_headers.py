"""Property: one-off reader emails (confirmation, address change) built from any
reader name keep their full header set when re-parsed (CVE-2024-6923 trap)."""

from __future__ import annotations

import email
from email import policy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.readers.confirmations import build_message

HEADERS = ("From", "To", "Subject", "Date", "Message-ID")
names = st.one_of(st.text(max_size=80),
                  st.sampled_from(["Ann\r\nBcc: x@y", "Ann\n", "\r\n", "=?utf-8?q?x?=", "A\x00B",
                                   "\u202eevil", "Ann <ann@example.org>", "a, b",
                                   # ASCII specials beside non-ASCII text
                                   "00000000) \u00a1\u00a1\U00010000", "x < \u00e9 >", "\u00e9" * 120]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, template=st.sampled_from(["confirm", "change-email"]))
def test_reader_emails_reparse_with_every_header(rt, name, template):
    greeting = "Hello,"
    values = {"name": name, "email": "ann@example.org", "unsubscribe_url": "",
              "preferences_url": "", "greeting": greeting,
              "confirm_url": "http://mailer.test/confirm/abc"}
    raw = build_message(rt.settings, name, "ann@example.org", template, values)
    msg = email.message_from_bytes(raw, policy=policy.default)
    for header in HEADERS:
        assert msg[header] is not None, (header, name)
    assert msg["To"].addresses[0].addr_spec == "ann@example.org"
    assert not msg.defects or all("Header" not in type(d).__name__ for d in msg.defects)
    assert msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None
    assert "http://mailer.test/confirm/abc" in msg.get_body(("plain",)).get_content()
    assert 'href="http://mailer.test/confirm/abc"' in msg.get_body(("html",)).get_content()
