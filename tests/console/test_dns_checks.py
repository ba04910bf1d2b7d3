"""The console's DNS checks (SPF, DKIM, DMARC, HELO) against a real NSD serving test zones:
good.test publishes everything right; bad.test has two SPF records, a DKIM key that is
not ours, no DMARC and a PTR naming another host."""

from __future__ import annotations

import base64
import dataclasses
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailer.config import Settings, load_settings
from mailer.console import DnsReport, DnsStatus, run_dns_checks
from mailer.console import dns_checks as dns_checks_module
from tests.support.nsd import Nsd, nsd_server

SOA = """$TTL 300
@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300
@ IN NS ns.{origin}.
"""


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _p(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(raw).decode()


def _txt(value: str) -> str:
    """Zone-file TXT data, split into strings of at most 255 characters."""
    return " ".join(f'"{value[i:i + 200]}"' for i in range(0, len(value), 200))


@dataclass(frozen=True)
class Keys:
    rsa: Path  # ours, published for good.test
    ed25519: Path  # ours, published for good.test
    public: dict[str, str]  # p= of each key, by file stem ("rsa", "ed25519", "other")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("dkim-keys")
    made = {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "other": rsa.generate_private_key(public_exponent=65537, key_size=1024),
            "ed25519": ed25519.Ed25519PrivateKey.generate()}
    for name, key in made.items():
        (root / f"{name}.pem").write_bytes(_pem(key))
    return Keys(root / "rsa.pem", root / "ed25519.pem",
                {name: _p(key) for name, key in made.items()})


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[Nsd]:
    def pub(name: str) -> str:
        return keys.public[name]

    good = SOA.format(origin="good.test") + f"""
ns IN A 127.0.0.1
@ IN TXT "v=spf1 a:mail.good.test -all"
@ IN TXT "google-site-verification=abc"
bounce IN TXT "v=spf1 ip4:127.0.0.1 -all"
bounce IN MX 10 mail.good.test.
mail IN A 127.0.0.1
alias IN A 127.0.0.1
open IN TXT "v=spf1 +all"
news._domainkey IN TXT {_txt("v=DKIM1; k=rsa; p=" + pub("rsa"))}
news-ed25519._domainkey IN TXT "v=DKIM1; k=ed25519; p={pub("ed25519")}"
_dmarc IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@good.test"
"""
    bad = SOA.format(origin="bad.test") + f"""
ns IN A 127.0.0.1
@ IN TXT "v=spf1 a -all"
@ IN TXT "v=spf1 mx -all"
news._domainkey IN TXT {_txt("v=DKIM1; k=rsa; p=" + pub("other"))}
mail IN A 127.0.0.2
"""
    reverse = SOA.format(origin="0.0.127.in-addr.arpa") + """
1 IN PTR mail.good.test.
2 IN PTR other.bad.test.
"""
    zones = {"good.test": good, "bad.test": bad, "0.0.127.in-addr.arpa": reverse,
             # A zone NSD cannot load: it answers SERVFAIL for it.
             "broken.test": "this is not a zone file\n"}
    yield from nsd_server(tmp_path_factory.mktemp("nsd"), zones)


@pytest.fixture
def base(tmp_path: Path, nsd: Nsd) -> Settings:
    return load_settings(instance_path=tmp_path, smtp_url="", dns_resolver=nsd.resolver,
                         return_path="", dkim_domain="", dkim_selector="",
                         dkim_private_key_path="", dkim_ed25519_private_key_path="",
                         dkim_ed25519_selector="", helo="")


def good(keys: Keys) -> dict[str, Any]:
    return dict(mail_from="Good News <news@good.test>", return_path="bounces@bounce.good.test",
                dkim_selector="news", dkim_private_key_path=str(keys.rsa),
                dkim_ed25519_private_key_path=str(keys.ed25519), dkim_ed25519_selector="",
                dkim_domain="", helo="mail.good.test", smtp_url="")


def bad(keys: Keys) -> dict[str, Any]:
    # Signs with our key, but bad.test publishes another one.
    return dict(mail_from="news@bad.test", return_path="", dkim_selector="news",
                dkim_private_key_path=str(keys.rsa), dkim_ed25519_private_key_path="",
                dkim_ed25519_selector="", dkim_domain="", helo="mail.bad.test", smtp_url="")


def good_settings(base: Settings, keys: Keys, **changes: Any) -> Settings:
    return dataclasses.replace(base, **{**good(keys), **changes})


def by_check(report: DnsReport) -> dict[str, list]:  # type: ignore[type-arg]
    found: dict[str, list] = {}  # type: ignore[type-arg]
    for check in report.checks:
        found.setdefault(check.check, []).append(check)
    return found


def test_good_domain_passes_every_check(base: Settings, keys: Keys) -> None:
    report = run_dns_checks(good_settings(base, keys))
    assert report.status == DnsStatus.PASS, [c for c in report.checks if c.status != "pass"]
    checks = by_check(report)
    assert [c.name for c in checks["SPF"]] == ["bounce.good.test", "good.test"]
    assert "v=spf1 ip4:127.0.0.1 -all" in checks["SPF"][0].message
    assert checks["DKIM (rsa)"][0].name == "news._domainkey.good.test"
    assert checks["DKIM (ed25519)"][0].name == "news-ed25519._domainkey.good.test"
    assert "quarantine" in checks["DMARC"][0].message
    assert "aligns" in checks["DMARC alignment"][0].message
    assert checks["Return-Path MX"][0].message == "Bounces for bounce.good.test go to mail.good.test."
    assert checks["HELO forward"][0].message == "mail.good.test resolves to 127.0.0.1."
    assert checks["HELO reverse"][0].name == "1.0.0.127.in-addr.arpa"
    assert "forward-confirmed" in checks["HELO reverse"][0].message
    assert all(not c.publish for c in report.checks)


def test_bad_domain_fails_with_the_records_to_publish(base: Settings,
                                                      keys: Keys) -> None:
    report = run_dns_checks(dataclasses.replace(base, **bad(keys)))
    assert report.status == DnsStatus.FAIL
    checks = {name: found[0] for name, found in by_check(report).items()}
    spf = checks["SPF"]
    assert spf.status == DnsStatus.FAIL and "2 SPF records" in spf.message
    assert "RFC 7208" in spf.message
    # The HELO host's address, as SPF wants it.
    assert spf.publish == 'bad.test. IN TXT "v=spf1 ip4:127.0.0.2 -all"'

    dkim = checks["DKIM (rsa)"]
    assert dkim.status == DnsStatus.FAIL and "not the public half" in dkim.message
    expected_p = keys.public["rsa"]
    published = "".join(re.findall(r'"([^"]*)"', dkim.publish))
    assert dkim.publish.startswith("news._domainkey.bad.test. IN TXT ")
    assert published == f"v=DKIM1; k=rsa; p={expected_p}"
    assert all(len(chunk) <= 255 for chunk in re.findall(r'"([^"]*)"', dkim.publish))

    dmarc = checks["DMARC"]
    assert dmarc.status == DnsStatus.FAIL and "No DMARC record" in dmarc.message
    assert "_dmarc.bad.test does not exist (NXDOMAIN)" in dmarc.message
    assert dmarc.publish.startswith('_dmarc.bad.test. IN TXT "v=DMARC1; p=none;')

    assert checks["Return-Path MX"].status == DnsStatus.FAIL
    assert checks["HELO forward"].status == DnsStatus.PASS
    reverse = checks["HELO reverse"]
    assert reverse.status == DnsStatus.FAIL
    assert "127.0.0.2 points back to other.bad.test" in reverse.message
    assert "not forward-confirmed" in reverse.message
    assert reverse.publish.startswith("2.0.0.127.in-addr.arpa. IN PTR mail.bad.test.")


def test_ptr_naming_another_confirmed_host_is_a_warning(base: Settings,
                                                        keys: Keys) -> None:
    report = run_dns_checks(good_settings(base, keys, helo="alias.good.test"))
    reverse = by_check(report)["HELO reverse"][0]
    assert reverse.status == DnsStatus.WARN
    assert "MAILER_HELO=mail.good.test" in reverse.message


def test_subdomain_inherits_dmarc_and_plus_all_spf_warns(base: Settings, keys: Keys) -> None:
    settings = good_settings(base, keys, mail_from="news@letters.good.test",
                             dkim_domain="good.test", return_path="bounces@open.good.test")
    checks = by_check(run_dns_checks(settings))
    dmarc = checks["DMARC"][0]
    assert dmarc.status == DnsStatus.PASS and dmarc.name == "_dmarc.good.test"
    assert "inherited from good.test" in dmarc.message
    alignment = checks["DMARC alignment"][0]
    assert alignment.status == DnsStatus.PASS and "d=good.test aligns" in alignment.message
    spf = checks["SPF"][0]
    assert spf.name == "open.good.test" and spf.status == DnsStatus.WARN
    assert "+all" in spf.message
    # letters.good.test has no SPF of its own: a warning, since SPF uses the Return-Path.
    assert checks["SPF"][1].status == DnsStatus.WARN


def test_alignment_fails_when_neither_dkim_nor_return_path_align(base: Settings,
                                                                keys: Keys) -> None:
    settings = good_settings(base, keys, dkim_selector="", return_path="bounces@bad.test")
    checks = by_check(run_dns_checks(settings))
    assert checks["DKIM"][0].status == DnsStatus.FAIL and "DKIM is off" in checks["DKIM"][0].message
    alignment = checks["DMARC alignment"][0]
    assert alignment.status == DnsStatus.FAIL and "does not align" in alignment.message
    # SPF of the From domain is still looked at, as a warning-level extra.
    assert [c.name for c in checks["SPF"]] == ["bad.test", "good.test"]


def test_unpublished_ed25519_selector_fails(base: Settings, keys: Keys) -> None:
    settings = good_settings(base, keys, dkim_ed25519_selector="edkey")
    check = by_check(run_dns_checks(settings))["DKIM (ed25519)"][0]
    assert check.status == DnsStatus.FAIL
    assert "edkey._domainkey.good.test does not exist (NXDOMAIN)" in check.message
    assert check.publish.startswith('edkey._domainkey.good.test. IN TXT "v=DKIM1; k=ed25519; p=')


def test_unreadable_or_foreign_key_fails_without_a_lookup(base: Settings, keys: Keys,
                                                          tmp_path: Path) -> None:
    missing = by_check(run_dns_checks(good_settings(
        base, keys, dkim_private_key_path=str(tmp_path / "nope.pem"))))["DKIM"][0]
    assert missing.status == DnsStatus.FAIL and "cannot read a DKIM key" in missing.message
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    broken = by_check(run_dns_checks(good_settings(
        base, keys, dkim_private_key_path=str(junk))))["DKIM"][0]
    assert broken.status == DnsStatus.FAIL and "not a readable PEM private key" in broken.message


def test_servfail_and_refused_become_messages(base: Settings, keys: Keys) -> None:
    broken = by_check(run_dns_checks(dataclasses.replace(
        base, mail_from="news@broken.test", helo="mail.good.test")))
    assert broken["SPF"][0].status == DnsStatus.FAIL
    assert "SERVFAIL" in broken["SPF"][0].message
    # NSD serves only its zones: anything else is refused.
    elsewhere = by_check(run_dns_checks(dataclasses.replace(
        base, mail_from="news@example.invalid", helo="mail.example.invalid")))
    assert "REFUSED" in elsewhere["SPF"][0].message
    assert "REFUSED" in elsewhere["HELO forward"][0].message


@pytest.fixture
def blackhole() -> Iterator[tuple[str, int]]:
    """A UDP port that takes queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield "127.0.0.1", sock.getsockname()[1]


def test_unreachable_resolver_is_reported_within_the_budget(base: Settings,
                                                            keys: Keys,
                                                            blackhole: tuple[str, int]) -> None:
    settings = good_settings(base, keys, dns_resolver=blackhole)
    started = time.monotonic()
    report = run_dns_checks(settings, timeout=0.3, budget=1.0)
    assert time.monotonic() - started < 2.0
    assert report.status == DnsStatus.WARN
    assert all(c.status == DnsStatus.WARN for c in report.checks
               if c.check not in ("DMARC alignment",)), report.checks
    assert any("did not answer for mail.good.test within 0.3 s" in c.message
               for c in report.checks)
    # After the first query timed out, the others are not tried.
    assert sum("did not answer the first query" in c.message for c in report.checks) >= 5


def test_a_slow_resolver_stops_at_the_budget(base: Settings, keys: Keys, nsd: Nsd,
                                              blackhole: tuple[str, int],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers first, then goes silent: each later query waits, the run stops at the budget."""
    settings = good_settings(base, keys)
    real = dns_checks_module._Lookups._query
    calls = {"n": 0}

    def flaky(self, name: str, rdtype: str):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 2:
            self.resolver.nameservers, self.resolver.port = [blackhole[0]], blackhole[1]
        return real(self, name, rdtype)

    monkeypatch.setattr(dns_checks_module._Lookups, "_query", flaky)
    started = time.monotonic()
    report = run_dns_checks(settings, timeout=0.3, budget=1.0)
    assert time.monotonic() - started < 2.0
    assert by_check(report)["HELO forward"][0].status == DnsStatus.PASS
    assert any("ran out of time" in c.message for c in report.checks)


def test_setting_parses_address_and_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in (("127.0.0.1:5353", ("127.0.0.1", 5353)), ("10.0.0.53", ("10.0.0.53", 53)),
                          ("[::1]:5300", ("::1", 5300)), ("::1", ("::1", 53)), ("", None)):
        monkeypatch.setenv("MAILER_DNS_RESOLVER", raw)
        assert load_settings(instance_path=tmp_path).dns_resolver == expected
    for raw in ("dns.example:53", "127.0.0.1:99999", "[::1]x"):
        monkeypatch.setenv("MAILER_DNS_RESOLVER", raw)
        with pytest.raises(SystemExit, match="MAILER_DNS_RESOLVER"):
            load_settings(instance_path=tmp_path)


# --- the Settings page --------------------------------------------------------------


def test_settings_page_shows_each_check(editor, settings_override, nsd: Nsd,  # type: ignore[no-untyped-def]
                                        keys: Keys) -> None:
    page = editor.get("/console/settings").get_data(as_text=True)
    assert "Check DNS" in page and 'action="/console/settings/dns-check#dns"' in page

    settings_override(**good(keys), dns_resolver=nsd.resolver)
    page = editor.post("/console/settings/dns-check").get_data(as_text=True)
    statuses = dict(re.findall(r'data-dns-check="([^"]+)" data-dns-status="(\w+)"', page))
    assert statuses == {"SPF": "pass", "DKIM (rsa)": "pass", "DKIM (ed25519)": "pass",
                        "DMARC": "pass", "DMARC alignment": "pass", "Return-Path MX": "pass",
                        "HELO forward": "pass", "HELO reverse": "pass"}
    assert 'class="flash ok" data-check="dns"' in page

    settings_override(**bad(keys))
    page = editor.post("/console/settings/dns-check").get_data(as_text=True)
    rows = re.findall(r'data-dns-check="([^"]+)" data-dns-status="(\w+)"', page)
    assert ("SPF", "fail") in rows and ("DKIM (rsa)", "fail") in rows
    assert ("DMARC", "fail") in rows and ("HELO reverse", "fail") in rows
    assert 'class="flash error" data-check="dns"' in page
    assert "Publish:" in page and "_dmarc.bad.test. IN TXT &#34;v=DMARC1; p=none;" in page


def test_settings_page_does_not_hang_on_a_dead_resolver(editor, settings_override,  # type: ignore[no-untyped-def]
                                                        blackhole: tuple[str, int],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dns_checks_module, "QUERY_TIMEOUT", 0.3)
    monkeypatch.setattr(dns_checks_module, "RUN_BUDGET", 1.0)
    settings_override(dns_resolver=blackhole, mail_from="news@good.test", helo="mail.good.test")
    started = time.monotonic()
    response = editor.post("/console/settings/dns-check")
    assert response.status_code == 200
    assert time.monotonic() - started < 3.0
    page = response.get_data(as_text=True)
    assert "did not answer" in page and 'data-dns-status="warn"' in page


def test_dns_check_needs_csrf_and_an_editor(viewer, editor) -> None:  # type: ignore[no-untyped-def]
    assert viewer.post("/console/settings/dns-check").status_code in (302, 403)
    assert editor.post("/console/settings/dns-check", csrf=False).status_code == 400



@pytest.mark.browser
def test_dns_results_read_well_and_pass_the_audit(editor, settings_override, nsd: Nsd,  # type: ignore[no-untyped-def]
                                                  keys: Keys, chromium, artifacts: Path) -> None:
    from tests.support.a11y import audit

    settings_override(**bad(keys), dns_resolver=nsd.resolver)
    html = editor.post("/console/settings/dns-check").get_data(as_text=True)
    css = Path(__file__).resolve().parents[2] / "mailer" / "static" / "console.css"
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.set_content(html)
        page.add_style_tag(path=str(css))
        assert audit(page) == []
        section = page.locator("#dns")
        assert section.locator("tr[data-dns-status=fail]").count() >= 4
        section.screenshot(path=str(artifacts / "console-dns-checks.png"))
        # The long DKIM record wraps inside the table instead of widening the page.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    finally:
        page.close()
