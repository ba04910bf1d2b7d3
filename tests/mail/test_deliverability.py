"""Every message type is DKIM-signed (relaxed/relaxed, over-signed, RSA by OpenSSL,
optional Ed25519), verified by dkimpy; messages are well-formed whatever the
subject, names and template values; headers for bulk-sender rules."""

from __future__ import annotations

import dataclasses
import email
import re
from email import policy

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mailer import delivery, editions
from mailer.mail import dkim_signer
from mailer.mail.dkim import DkimSigner, canonical_body, split_message
from mailer.mail.messages import MessageSkeleton, Recipient
from mailer.models import Delivery
from mailer.readers.confirmations import build_message
from tests.delivery.test_lane_and_sweeper import planned_edition


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("dkim-keys")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    rsa_path, ed_path = folder / "rsa.pem", folder / "ed.pem"
    rsa_path.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    ed_path.write_bytes(ed_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    signer = DkimSigner.from_files("news", "mailer.test", str(rsa_path), str(ed_path))
    return {"rsa": rsa_path, "ed": ed_path, "records": signer.public_records()}


def dns_for(records: dict[str, str]):
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        selector, _, domain = name.decode().rstrip(".").partition("._domainkey.")
        record = records.get(selector) if domain == "mailer.test" else None
        return record.encode() if record else None

    return dnsfunc


@pytest.fixture
def signed(settings_override, keys):
    settings_override(dkim_selector="news", dkim_domain="mailer.test",
                      dkim_private_key_path=str(keys["rsa"]),
                      dkim_ed25519_private_key_path=str(keys["ed"]))
    return dns_for(keys["records"])  # type: ignore[arg-type]


def verify_both(raw: bytes, dnsfunc) -> None:
    d = dkim.DKIM(raw)
    assert d.verify(idx=0, dnsfunc=dnsfunc), "RSA signature"
    assert dkim.DKIM(raw).verify(idx=1, dnsfunc=dnsfunc), "Ed25519 signature"
    signatures = email.message_from_bytes(raw, policy=policy.default).get_all("DKIM-Signature")
    assert "a=rsa-sha256" in str(signatures[0]) and "a=ed25519-sha256" in str(signatures[1])
    assert all("c=relaxed/relaxed" in str(s) for s in signatures)


def messages_of_every_type(session, rt, sender) -> dict[str, bytes]:
    edition = planned_edition(session, rt, readers=1)
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, dkim_signer(rt.settings)))
    digest_raw = sender.messages[-1][2]
    values = {"name": "Ann", "email": "ann@example.org", "greeting": "Hello Ann,",
              "confirm_url": "http://mailer.test/confirm/abc", "unsubscribe_url": "",
              "preferences_url": ""}
    confirm = build_message(rt.settings, "Ann", "ann@example.org", "confirm", values)
    change = build_message(rt.settings, "Ann", "ann@example.org", "change-email", values)
    sender.messages.clear()
    editions.test_send(session, rt.settings, sender, edition.digest_id, ["editor@example.org"])
    return {"digest": digest_raw, "confirm": confirm, "change-email": change,
            "test-send": sender.messages[-1][2]}


def test_every_message_type_is_signed_twice_and_verifies(session, rt, sender, dispatch, signed):
    for kind, raw in messages_of_every_type(session, rt, sender).items():
        verify_both(raw, signed)
        msg = email.message_from_bytes(raw, policy=policy.default)
        if kind in ("confirm", "change-email", "test-send"):
            assert msg["Auto-Submitted"] == "auto-generated", kind
        assert msg["Feedback-ID"] and msg["Feedback-ID"].endswith(":mailer.test"), kind
        if kind == "digest":
            assert re.fullmatch(r'"[^"]+" <[a-z0-9-]+-d\d+\.mailer\.test>', msg["List-Id"])
            assert msg["Auto-Submitted"] is None


def test_added_headers_break_the_signature_and_absent_ones_are_signed(
        session, rt, sender, dispatch, signed):
    raw = messages_of_every_type(session, rt, sender)["digest"]
    assert dkim.verify(raw, dnsfunc=signed)
    signature = str(email.message_from_bytes(raw, policy=policy.default)["DKIM-Signature"])
    names = re.sub(r"\s+", "", re.search(r"h=([^;]+);", signature).group(1)).split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe",
                 "list-unsubscribe-post", "list-id", "feedback-id"):
        assert names.count(name) == 2, name  # present once, signed once more
    assert names.count("reply-to") == 1  # absent: signed as empty
    for added in (b"List-Unsubscribe: <https://evil.example/u>\r\n",
                  b"From: Bank <bank@evil.example>\r\n", b"Reply-To: evil@evil.example\r\n"):
        assert not dkim.verify(added + raw, dnsfunc=signed), added
        # prepended below the signatures too
        at = raw.index(b"Date:")
        assert not dkim.verify(raw[:at] + added + raw[at:], dnsfunc=signed), added


def test_ledger_row_keeps_its_message_id_and_test_sends_never_repeat(
        session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=1)
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, None))
    first = email.message_from_bytes(sender.messages[-1][2], policy=policy.default)["Message-ID"]
    again = delivery.SkeletonCache(rt.settings, None).get(session, edition.id, _variant(session))
    rcpt = Recipient(first_reader(session), "x@example.org", "", "u", "p")
    assert again.message_id(rcpt.reader_id) == first  # same row, same id, any process
    other_install = dataclasses.replace(rt.settings, secret_key="another-install")
    other = delivery.SkeletonCache(other_install, None).get(session, edition.id, _variant(session))
    assert other.message_id(rcpt.reader_id) != first
    sender.messages.clear()
    for _ in range(3):
        editions.test_send(session, rt.settings, sender, edition.digest_id, ["ed@example.org"])
    ids = {email.message_from_bytes(m[2], policy=policy.default)["Message-ID"]
           for m in sender.messages}
    assert len(ids) == 3 and first not in ids


def _variant(session):
    return session.scalar(select(Delivery.variant_id))


def first_reader(session):
    return session.scalar(select(Delivery.reader_id))


# --- well-formed, whatever the input ----------------------------------------------------

TEXT_TEMPLATE = st.lists(st.one_of(
    st.text(min_size=0, max_size=120),
    st.sampled_from(["%%greeting%%", "%%name%%", "%%unsubscribe_url%%", "%%email%%", "\n",
                     "\n\n", "--\n", "  ", ".", "=", "\t", "é" * 40, "x" * 100,
                     "<td>" + "y. = " * 80, "a" * 400]),
), max_size=30).map("".join)


def _qp_lines(raw: bytes) -> list[bytes]:
    _head, _, body = raw.partition(b"\r\n\r\n")
    lines = body.split(b"\r\n")
    # only part bodies: skip MIME boundaries and part headers
    return [line for line in lines if not line.startswith(b"--=_mailer_")]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=st.text(min_size=1, max_size=200), name=st.text(max_size=100),
       text=TEXT_TEMPLATE, html=TEXT_TEMPLATE, url_tail=st.text(max_size=60))
def test_any_message_reparses_strictly_with_short_qp_lines_and_crlf_only(
        subject, name, text, html, url_tail):
    skeleton = MessageSkeleton(subject=subject, html=html, text=text,
                               mail_from="News <news@example.org>", secret="s", edition_id=3,
                               list_id='"News" <news-d1.example.org>',
                               feedback_id="e3:d1:digest:example.org")
    rcpt = Recipient(7, "ada@example.org", name, "https://n.example/u/r7.x?q=" + url_tail,
                     "https://n.example/p", "r7.x")
    raw = skeleton.render(rcpt)
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")[:40]) <= 998
    msg = email.message_from_bytes(raw, policy=policy.strict)  # raises on any defect
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for line in _qp_lines(raw):
        assert len(line) <= 76, line
        assert not line.startswith(b"."), line
    _, body = split_message(raw)
    assert canonical_body(body) == body  # the body is its own relaxed canonical form
    plain = msg.get_body(("plain",)).get_content()
    for line in plain.splitlines():
        assert len(line) <= 72 or " " not in line.strip(), line
    if "%%" not in text:  # text without placeholders survives (up to wrapping)
        assert "".join(plain.split()) == "".join(text.replace("\x00", "").split())


@settings(max_examples=60, deadline=None)
@given(subject=st.text(alphabet=st.characters(min_codepoint=0x80),
                       min_size=40, max_size=300))
def test_long_non_ascii_subjects_fold_with_crlf(subject):
    skeleton = MessageSkeleton(subject=subject, html="h", text="t",
                               mail_from="News <news@example.org>", secret="s", edition_id=1)
    raw = skeleton.render(Recipient(1, "a@example.org", "", "https://n/u", "https://n/p"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] is not None


def test_text_part_has_a_signature_separator_and_is_wrapped(session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=1)
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, None))
    msg = email.message_from_bytes(sender.messages[-1][2], policy=policy.default)
    plain = msg.get_body(("plain",)).get_content()
    assert "\n-- \n" in plain.replace("\r\n", "\n")
    html = msg.get_body(("html",)).get_content()
    assert "mj-preview" not in html and "#ffffff" not in html.split("<body")[1][:600]


def test_preheader_does_not_repeat_the_subject():
    from mailer.mail.rendering import preheader

    articles = [{"title": "Rates rise again"}, {"title": "Harbour reopens"},
                {"title": "New library"}]
    text = preheader(articles, {"name": "Morning"})
    assert "Rates rise" not in text and "Harbour reopens" in text
    assert "Rates" not in preheader([{"title": "Rates", "summary": "Why it matters"}], {})
