"""Messages built from the skeleton re-parse with every header intact."""

from __future__ import annotations

import email
from email import policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.mail.messages import MessageSkeleton, Recipient, address_header, message_id
from mailer.mail.rendering import compile_email

HTML = "<p>%%greeting%%</p><a href=\"%%unsubscribe_url%%\">bye</a> " + "x" * 200
TEXT = "%%greeting%%\nUnsubscribe: %%unsubscribe_url%%\n" + "long line " * 30


def skeleton(subject: str = "Today's news") -> MessageSkeleton:
    return MessageSkeleton(subject=subject, html=HTML, text=TEXT,
                           mail_from="News <news@example.org>", secret="s", edition_id=7)


def recipient(name: str = "Ada", email_addr: str = "ada@example.org") -> Recipient:
    return Recipient(reader_id=3, email=email_addr, name=name,
                     unsubscribe_url="https://n.example/unsubscribe/abc.def=ghi",
                     preferences_url="https://n.example/preferences/xyz")


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def test_message_has_every_required_header_and_both_parts():
    msg = parse(skeleton().render(recipient()))
    for header in ("Date", "Message-ID", "From", "To", "Subject", "List-Unsubscribe",
                   "List-Unsubscribe-Post"):
        assert msg[header], header
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"] == "<https://n.example/unsubscribe/abc.def=ghi>"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Hello Ada," in text and "abc.def=ghi" in text
    assert 'href="https://n.example/unsubscribe/abc.def=ghi"' in html


def test_message_id_is_deterministic_per_edition_and_reader():
    a = parse(skeleton().render(recipient()))["Message-ID"]
    b = parse(skeleton().render(recipient()))["Message-ID"]
    assert a == b == message_id("s", 7, 3, "example.org")


def test_lines_stay_under_998_octets():
    raw = skeleton().render(recipient(name="N" * 150))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_html_values_are_escaped():
    html = parse(skeleton().render(recipient(name="<script>x</script>"))).get_body(("html",))
    assert "<script>" not in html.get_content()


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=80), subject=st.text(min_size=1, max_size=120))
def test_any_reader_name_or_subject_keeps_the_full_header_set(name, subject):
    msg = parse(skeleton(subject).render(recipient(name=name)))
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"]
    assert msg["Message-ID"]
    assert "\n" not in str(msg["Subject"]) and "\r" not in str(msg["Subject"])
    assert msg.get_body(("plain",)) is not None


def test_digest_template_compiles_with_placeholders():
    compiled = compile_email("digest", {
        "digest": {"name": "Daily", "subject": ""},
        "edition": {"id": 1, "date": None},
        "articles": [{"id": 1, "url": "https://x.example/a", "title": "T %%email%%",
                      "author": "", "summary": "S", "image_url": "", "published_at": None,
                      "topics": []}],
        "base_url": "https://x.example", "archive_url": "https://x.example/archive/1",
    })
    assert "%%unsubscribe_url%%" in compiled.html and "%%unsubscribe_url%%" in compiled.text
    # article text cannot forge a placeholder
    assert "T %%email%%" not in compiled.html


def test_no_line_starts_with_a_dot_so_smtp_needs_no_dot_stuffing():
    s = MessageSkeleton(subject="S", html=".cls { color: red }\n.x\n%%greeting%%\n.\n" + "y" * 300,
                        text=".first\n%%name%%\n.%%email%%\n", mail_from="news@example.org",
                        secret="s", edition_id=1)
    raw = s.render(recipient(name=".Dot"))
    assert not raw.startswith(b".")
    assert b"\r\n." not in raw
    msg = parse(raw)
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith(".first\n.Dot\n.ada@example.org")
    assert ".cls { color: red }\n.x\n" in msg.get_body(("html",)).get_content().replace("\r\n", "\n")


@pytest.mark.parametrize("name", ["00000000) \u00a1\u00a1\U00010000", "a) \u00e9", "x < \u00e9 >",
                                  "\u00e9 \"q\" (", "Ann, Bob \u00e9", "\u00e9" * 200])
def test_address_header_keeps_the_address_whatever_the_name(name: str) -> None:
    # The stdlib folder leaves ASCII runs of a mixed name bare, so a ")" there once
    # turned the To header into the address "00000000".
    value = address_header(name, "ann@example.org")
    assert "\n" not in value.replace("\r\n ", "")
    assert all(len(line) <= 78 for line in value.split("\r\n"))
    parsed = email.message_from_bytes(f"To: {value}\r\n\r\n".encode(), policy=policy.strict)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ann@example.org"]
    assert parsed["To"].addresses[0].display_name.replace(" ", "") == name.replace(" ", "")


@given(st.lists(st.sampled_from(["a", "bb", "x" * 30, " ", "  ", "\t", "é", "\u00a0", "-",
                                  "https://news.example.org/u/abc"]), max_size=40).map("".join),
       st.integers(min_value=5, max_value=80))
def test_wrap_text_wraps_exactly_as_textwrap(text: str, width: int):
    """The quick path for lines of single blanks gives textwrap's lines."""
    import textwrap

    from mailer.mail.messages import wrap_text

    got = wrap_text(text, width)
    if len(text) <= width or not text.strip():
        assert got == [text]
        return
    indent = text[: len(text) - len(text.lstrip())]
    assert got == (textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent,
                                 break_long_words=False, break_on_hyphens=False) or [text])
