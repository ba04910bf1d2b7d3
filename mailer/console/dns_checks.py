"""DNS checks of the sending domains, run from the console's Settings page.

For the From domain, the Return-Path (envelope) domain, the DKIM domain and the
HELO name, look up what receivers will look up: SPF, the DKIM key of each
configured selector (and that it is the public half of our private key), DMARC
and its alignment with From, and forward-confirmed reverse DNS of the HELO name.
Each check ends as pass, warn or fail with a sentence and, when something is
wrong, the record to publish in zone-file form.

Lookups go to `MAILER_DNS_RESOLVER` (tests point it at their own server) or the
system resolver. Every query has a short timeout and the whole run a budget, so
an unreachable resolver costs a few seconds, not a hung page; DNS errors become
messages, never exceptions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename

from mailer.config import Settings
from mailer.mail import DkimKeyError, DkimSigner

QUERY_TIMEOUT = 2.0  # seconds per query
RUN_BUDGET = 6.0  # seconds for every query of one run together


class DnsStatus(StrEnum):
    PASS = "pass"  # noqa: S105 (a check outcome, not a password)
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class DnsCheck:
    check: str  # "SPF", "DKIM", "DMARC", "DMARC alignment", "HELO forward", ...
    name: str  # the DNS name looked at
    status: DnsStatus
    message: str
    publish: str = ""  # the record(s) to publish, zone-file lines; blank when nothing to do


@dataclass(frozen=True)
class DnsReport:
    resolver: str
    checks: list[DnsCheck] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> DnsStatus:
        states = {c.status for c in self.checks}
        for worst in (DnsStatus.FAIL, DnsStatus.WARN):
            if worst in states:
                return worst
        return DnsStatus.PASS


class _LookupFailed(Exception):
    """A query that gave no answer (timeout, SERVFAIL, refused): the check is unknown."""

    def __init__(self, status: DnsStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _Answer:
    values: list[str]
    absent: str = ""  # why `values` is empty: "x does not exist (NXDOMAIN)", ...


class _Lookups:
    """Queries through one resolver, each short, all together within a budget."""

    def __init__(self, resolver: dns.resolver.Resolver, describe: str, timeout: float,
                 budget: float) -> None:
        self.resolver = resolver
        self.describe = describe
        self.timeout = timeout
        self.deadline = time.monotonic() + budget
        self.cache: dict[tuple[str, str], _Answer | _LookupFailed] = {}
        self.answered = False  # has the resolver answered anything yet?
        self.dead = False  # its first query timed out: the others would too

    def query(self, name: str, rdtype: str) -> _Answer:
        key = (name.lower().rstrip("."), rdtype)
        if key not in self.cache:
            try:
                self.cache[key] = self._query(key[0], rdtype)
            except _LookupFailed as exc:
                self.cache[key] = exc
        found = self.cache[key]
        if isinstance(found, _LookupFailed):
            raise found
        return found

    def _query(self, name: str, rdtype: str) -> _Answer:
        if self.dead:
            raise _LookupFailed(DnsStatus.WARN, f"Not checked: the resolver {self.describe} "
                                                f"did not answer the first query.")
        left = self.deadline - time.monotonic()
        if left <= 0.05:
            raise _LookupFailed(DnsStatus.WARN, f"Not checked: the DNS checks ran out of time "
                                                f"(resolver {self.describe} too slow or "
                                                f"unreachable).")
        lifetime = min(self.timeout, left)
        try:
            answer = self.resolver.resolve(name, rdtype, lifetime=lifetime,
                                           raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            self.answered = True
            return _Answer([], f"{name} does not exist (NXDOMAIN)")
        except dns.resolver.LifetimeTimeout:
            self.dead = not self.answered
            raise _LookupFailed(DnsStatus.WARN, f"Not checked: the resolver {self.describe} "
                                                f"did not answer for {name} within "
                                                f"{lifetime:.1f} s.") from None
        except dns.resolver.NoNameservers as exc:
            self.answered = True
            raise _LookupFailed(DnsStatus.FAIL, f"The resolver {self.describe} could not get "
                                                f"an answer for {name} {rdtype} "
                                                f"({_rcodes(exc)}): receivers will likely fail "
                                                f"the same way.") from None
        except dns.exception.DNSException as exc:
            raise _LookupFailed(DnsStatus.WARN, f"Not checked: looking up {name} {rdtype} "
                                                f"failed ({exc}).") from None
        self.answered = True
        if answer.rrset is None:
            return _Answer([], f"{name} has no {rdtype} record")
        return _Answer([_text(rdata) for rdata in answer.rrset])


def _rcodes(exc: dns.resolver.NoNameservers) -> str:
    """SERVFAIL, REFUSED... as the servers answered."""
    errors = exc.kwargs.get("errors") or []
    codes = []
    for error in errors:
        answer = error[4] if len(error) > 4 else None
        code = getattr(answer, "rcode", None)
        text = dns.rcode.to_text(code()) if callable(code) else str(error[3])
        if text not in codes:
            codes.append(text)
    return ", ".join(codes) or "SERVFAIL"


def _text(rdata: object) -> str:
    if getattr(rdata, "rdtype", None) == dns.rdatatype.TXT:
        # A long TXT record comes as several strings: they form one value, unspaced.
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    return str(rdata).rstrip(".").lower()


def _make_resolver(settings: Settings, timeout: float = QUERY_TIMEOUT
                  ) -> tuple[dns.resolver.Resolver, str]:
    """(resolver, how to name it in messages) for MAILER_DNS_RESOLVER or the system's."""
    if settings.dns_resolver:
        address, port = settings.dns_resolver
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [address]
        resolver.port = port
        describe = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    else:
        resolver = dns.resolver.Resolver()  # NoResolverConfiguration: caller says so
        describe = "system resolver (" + ", ".join(str(n) for n in resolver.nameservers) + ")"
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    return resolver, describe


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(".").lower()


def _txt_line(name: str, value: str) -> str:
    """A zone-file TXT line, split into 255-byte strings as DNS requires."""
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    quoted = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{name}. IN TXT {quoted}"


def _tags(record: str) -> dict[str, str]:
    """`v=DKIM1; k=rsa; p=...` -> {"v": "DKIM1", ...}; whitespace inside values dropped."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), "".join(value.split()))
    return tags


def _aligned(domain: str, from_domain: str) -> str:
    """'strict', 'relaxed' or '' (not aligned). Relaxed alignment compares organisational
    domains; without the public suffix list, a parent/child relation or a shared parent of
    at least two labels stands in for it."""
    a, b = domain.lower().strip("."), from_domain.lower().strip(".")
    if a == b:
        return "strict"
    if a.endswith("." + b) or b.endswith("." + a):
        return "relaxed"
    common = []
    for left, right in zip(reversed(a.split(".")), reversed(b.split(".")), strict=False):
        if left != right:
            break
        common.append(left)
    return "relaxed" if len(common) >= 2 else ""


# --- the checks -------------------------------------------------------------------


def _spf_suggestion(settings: Settings, helo_addresses: list[str]) -> str:
    mechanisms = [f"ip6:{a}" if ":" in a else f"ip4:{a}" for a in helo_addresses]
    if not mechanisms:
        mechanisms = [f"a:{settings.helo_name}"]
    relay = urlsplit(settings.smtp_url.split(",")[0].strip()).hostname if settings.smtp_url else ""
    if relay and relay not in ("127.0.0.1", "localhost", "::1"):
        # Through a relay the relay's addresses send: its provider documents an include.
        mechanisms = ["include:<your relay's SPF domain>"]
    return "v=spf1 " + " ".join(mechanisms) + " -all"


def _spf(lookups: _Lookups, domain: str, role: str, settings: Settings, required: bool,
         helo_addresses: list[str]) -> DnsCheck:
    suggestion = _txt_line(domain, _spf_suggestion(settings, helo_addresses))
    try:
        answer = lookups.query(domain, "TXT")
    except _LookupFailed as exc:
        return DnsCheck("SPF", domain, exc.status, exc.message, suggestion)
    records = [v for v in answer.values if v.lower() == "v=spf1" or v.lower().startswith("v=spf1 ")]
    if not records:
        why = answer.absent or f"{domain} has TXT records but none starts with v=spf1"
        if required:
            return DnsCheck("SPF", domain, DnsStatus.FAIL,
                            f"No SPF record for the {role} domain: {why}. Receivers cannot "
                            f"tell your servers from forgers.", suggestion)
        return DnsCheck("SPF", domain, DnsStatus.WARN,
                        f"No SPF record for the {role} domain: {why}. SPF is checked on the "
                        f"Return-Path domain, but a record here stops others using this "
                        f"domain in their envelopes.", suggestion)
    if len(records) > 1:
        return DnsCheck("SPF", domain, DnsStatus.FAIL,
                        f"{len(records)} SPF records for the {role} domain: receivers treat "
                        f"that as a permanent error (RFC 7208 3.2), as if there were none. "
                        f"Merge them into one: " + " | ".join(records), suggestion)
    record = records[0]
    terms = record.lower().split()[1:]
    if "+all" in terms or "all" in terms:
        return DnsCheck("SPF", domain, DnsStatus.WARN,
                        f"The SPF record of the {role} domain ends in +all: it allows every "
                        f"server on the internet. Found: {record}", suggestion)
    if not any(t.lstrip("-~?+").startswith(("all", "redirect=")) for t in terms):
        return DnsCheck("SPF", domain, DnsStatus.WARN,
                        f"The SPF record of the {role} domain has no 'all' term, so it says "
                        f"nothing about other servers. Found: {record}", suggestion)
    return DnsCheck("SPF", domain, DnsStatus.PASS,
                    f"One SPF record for the {role} domain: {record}")


def _dkim(lookups: _Lookups, settings: Settings, domain: str) -> list[DnsCheck]:
    if not (settings.dkim_selector and settings.dkim_private_key_path):
        return [DnsCheck("DKIM", domain, DnsStatus.FAIL,
                         "DKIM is off (MAILER_DKIM_SELECTOR and MAILER_DKIM_PRIVATE_KEY unset): "
                         "Gmail and Yahoo require bulk mail to be signed.")]
    try:
        signer = DkimSigner.from_files(settings.dkim_selector, domain,
                                       settings.dkim_private_key_path,
                                       settings.dkim_ed25519_private_key_path,
                                       settings.dkim_ed25519_selector)
    except DkimKeyError as exc:
        return [DnsCheck("DKIM", domain, DnsStatus.FAIL, f"The DKIM key cannot be used: {exc}")]
    except Exception as exc:  # a key file of a kind `cryptography` refuses in its own way
        return [DnsCheck("DKIM", domain, DnsStatus.FAIL,
                         f"The DKIM key cannot be used: {type(exc).__name__}: {exc}")]
    return [_dkim_record(lookups, f"{selector}._domainkey.{domain}", expected)
            for selector, expected in signer.public_records().items()]


def _dkim_record(lookups: _Lookups, name: str, expected: str) -> DnsCheck:
    wanted = _tags(expected)
    kind = wanted.get("k", "rsa")
    check = f"DKIM ({kind})"
    publish = _txt_line(name, expected)
    try:
        answer = lookups.query(name, "TXT")
    except _LookupFailed as exc:
        return DnsCheck(check, name, exc.status, exc.message, publish)
    records = [v for v in answer.values if "p=" in v or v.lower().startswith("v=dkim1")]
    if not records:
        why = answer.absent or f"the TXT records at {name} hold no DKIM key"
        return DnsCheck(check, name, DnsStatus.FAIL,
                        f"No DKIM key published: {why}. Signatures cannot be verified.",
                        publish)
    if len(records) > 1:
        return DnsCheck(check, name, DnsStatus.FAIL,
                        f"{len(records)} DKIM records at {name}: verifiers may pick any of "
                        f"them; keep only the one below.", publish)
    found = _tags(records[0])
    if not found.get("p"):
        return DnsCheck(check, name, DnsStatus.FAIL,
                        "The published key is empty (p=): that marks the key revoked.", publish)
    if found.get("k", "rsa").lower() != kind or found["p"] != wanted["p"]:
        return DnsCheck(check, name, DnsStatus.FAIL,
                        "The published key is not the public half of the configured private "
                        "key: every signature will fail. Replace the record with the one "
                        "below.", publish)
    if "y" in found.get("t", "").lower().split(":"):
        return DnsCheck(check, name, DnsStatus.WARN,
                        "The key matches, but t=y (testing) tells receivers to ignore failed "
                        "signatures; drop t=y once mail verifies.", publish)
    return DnsCheck(check, name, DnsStatus.PASS,
                    "The published key matches the configured private key.")


def _dmarc(lookups: _Lookups, from_domain: str) -> tuple[DnsCheck, dict[str, str]]:
    """The DMARC record of the From domain (or of a parent, as receivers fall back to the
    organisational domain), and its tags."""
    name = f"_dmarc.{from_domain}"
    publish = _txt_line(name, f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{from_domain}")
    labels = from_domain.split(".")
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)] or [from_domain]
    absent = ""
    for domain in candidates:
        looked = f"_dmarc.{domain}"
        try:
            answer = lookups.query(looked, "TXT")
        except _LookupFailed as exc:
            return DnsCheck("DMARC", name, exc.status, exc.message, publish), {}
        records = [v for v in answer.values if v.replace(" ", "").lower().startswith("v=dmarc1")]
        absent = absent or answer.absent
        if not records:
            continue
        if len(records) > 1:
            return DnsCheck("DMARC", looked, DnsStatus.FAIL,
                            f"{len(records)} DMARC records at {looked}: receivers then apply "
                            f"no DMARC at all (RFC 7489 6.6.3); keep one.", publish), {}
        tags = _tags(records[0])
        policy_tag = "sp" if domain != from_domain and "sp" in tags else "p"
        policy = tags.get(policy_tag, "").lower()
        if policy not in ("none", "quarantine", "reject"):
            return DnsCheck("DMARC", looked, DnsStatus.FAIL,
                            f"The DMARC record has no valid policy ({policy_tag}= must be "
                            f"none, quarantine or reject). Found: {records[0]}", publish), tags
        where = "" if domain == from_domain else f" (inherited from {domain})"
        if policy == "none":
            message = (f"DMARC policy none{where}: receivers report but do not act; move "
                       f"to quarantine once the reports show every message aligned. "
                       f"Found: {records[0]}")
        else:
            message = f"DMARC policy {policy}{where}. Found: {records[0]}"
        if "rua" not in tags:
            message += " (no rua=: you get no aggregate reports)"
        return DnsCheck("DMARC", looked, DnsStatus.PASS, message), tags
    return DnsCheck("DMARC", name, DnsStatus.FAIL,
                    f"No DMARC record: {absent or f'{name} has no v=DMARC1 record'}. Gmail "
                    f"and Yahoo require one from bulk senders.", publish), {}


def _alignment(settings: Settings, from_domain: str, return_domain: str, dkim_domain: str,
               tags: dict[str, str]) -> DnsCheck:
    dkim_on = bool(settings.dkim_selector and settings.dkim_private_key_path)
    strict_dkim = tags.get("adkim", "r").lower() == "s"
    strict_spf = tags.get("aspf", "r").lower() == "s"
    dkim_how = _aligned(dkim_domain, from_domain) if dkim_on else ""
    spf_how = _aligned(return_domain, from_domain)
    dkim_ok = dkim_how == "strict" or (dkim_how == "relaxed" and not strict_dkim)
    spf_ok = spf_how == "strict" or (spf_how == "relaxed" and not strict_spf)
    parts = [
        f"DKIM d={dkim_domain} " + ("aligns" if dkim_ok else "does not align")
        if dkim_on else "DKIM is off",
        f"Return-Path domain {return_domain} " + ("aligns" if spf_ok else "does not align"),
    ]
    summary = f"From domain {from_domain}: " + "; ".join(parts) + "."
    if dkim_ok and spf_ok:
        return DnsCheck("DMARC alignment", from_domain, DnsStatus.PASS, summary)
    if dkim_ok:
        return DnsCheck("DMARC alignment", from_domain, DnsStatus.PASS,
                        summary + " DKIM alignment is enough to pass DMARC.")
    if spf_ok:
        fix = ("sign with d= the From domain (MAILER_DKIM_DOMAIN)" if dkim_on else
               "turn DKIM on (MAILER_DKIM_SELECTOR, MAILER_DKIM_PRIVATE_KEY)")
        return DnsCheck("DMARC alignment", from_domain, DnsStatus.WARN,
                        summary + f" Only SPF aligns, and SPF breaks when mail is forwarded: "
                                  f"{fix}.")
    return DnsCheck("DMARC alignment", from_domain, DnsStatus.FAIL,
                    summary + " Neither aligns, so every message fails DMARC: sign with DKIM, "
                              "MAILER_DKIM_DOMAIN the From domain (or its parent).")


def _helo(lookups: _Lookups, helo: str) -> tuple[list[DnsCheck], list[str]]:
    """Forward (A/AAAA) and forward-confirmed reverse DNS of the HELO name."""
    publish_a = f"{helo}. IN A <the public address this server sends from>"
    if "." not in helo.strip(".") or helo.lower() == "localhost":
        return [DnsCheck("HELO forward", helo, DnsStatus.FAIL,
                         f"The HELO name {helo!r} is not a fully qualified domain name; set "
                         f"MAILER_HELO to this server's public name.", publish_a)], []
    addresses: list[str] = []
    notes: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = lookups.query(helo, rdtype)
        except _LookupFailed as exc:
            return [DnsCheck("HELO forward", helo, exc.status, exc.message, publish_a)], []
        addresses += answer.values
        notes.append(answer.absent)
    if not addresses:
        return [DnsCheck("HELO forward", helo, DnsStatus.FAIL,
                         f"The HELO name has no address: {notes[0] or 'no A or AAAA record'}. "
                         f"Receivers distrust a HELO that does not resolve.", publish_a)], []
    checks = [DnsCheck("HELO forward", helo, DnsStatus.PASS,
                       f"{helo} resolves to {', '.join(addresses)}.")]
    checks += [_reverse(lookups, helo, address) for address in addresses]
    return checks, addresses


def _reverse(lookups: _Lookups, helo: str, address: str) -> DnsCheck:
    ptr_name = dns.reversename.from_address(address).to_text(omit_final_dot=True)
    publish = f"{ptr_name}. IN PTR {helo}.  ; set by whoever owns {address} (your hosting provider)"
    try:
        answer = lookups.query(ptr_name, "PTR")
    except _LookupFailed as exc:
        return DnsCheck("HELO reverse", ptr_name, exc.status, exc.message, publish)
    if not answer.values:
        return DnsCheck("HELO reverse", ptr_name, DnsStatus.FAIL,
                        f"{address} has no reverse DNS: {answer.absent}. Many receivers "
                        f"refuse mail from such addresses.", publish)
    confirmed: list[str] = []
    for name in answer.values:
        try:
            forward = [v for t in ("A", "AAAA") for v in lookups.query(name, t).values]
        except _LookupFailed:
            continue
        if address in forward:
            confirmed.append(name)
    names = ", ".join(answer.values)
    if helo.lower().rstrip(".") in confirmed:
        return DnsCheck("HELO reverse", ptr_name, DnsStatus.PASS,
                        f"{address} points back to {helo}, which resolves to it "
                        f"(forward-confirmed).")
    if confirmed:
        return DnsCheck("HELO reverse", ptr_name, DnsStatus.WARN,
                        f"{address} points back to {', '.join(confirmed)} (forward-confirmed), "
                        f"not to the HELO name {helo}: set MAILER_HELO={confirmed[0]} or change "
                        f"the PTR.", publish)
    return DnsCheck("HELO reverse", ptr_name, DnsStatus.FAIL,
                    f"{address} points back to {names}, which is not {helo} and does not "
                    f"resolve to {address}: reverse DNS is not forward-confirmed.", publish)


def _return_path_mx(lookups: _Lookups, domain: str, helo: str) -> DnsCheck:
    """Bounces come back to the Return-Path domain: it needs an MX (or at least an A)."""
    publish = f"{domain}. IN MX 10 {helo}."
    try:
        mx = lookups.query(domain, "MX")
        if mx.values:
            hosts = ", ".join(v.split()[-1] for v in mx.values)
            return DnsCheck("Return-Path MX", domain, DnsStatus.PASS,
                            f"Bounces for {domain} go to {hosts}.")
        a = lookups.query(domain, "A")
    except _LookupFailed as exc:
        return DnsCheck("Return-Path MX", domain, exc.status, exc.message, publish)
    if a.values:
        return DnsCheck("Return-Path MX", domain, DnsStatus.WARN,
                        f"{domain} has no MX; bounces go to its address {a.values[0]} "
                        f"(implicit MX). Publish an MX to say where they go.", publish)
    return DnsCheck("Return-Path MX", domain, DnsStatus.FAIL,
                    f"{domain} has no MX and no address: bounces cannot come back, and some "
                    f"receivers refuse mail from such a domain.", publish)


def run_dns_checks(settings: Settings, timeout: float | None = None,
                   budget: float | None = None) -> DnsReport:
    """Every DNS check for these settings. Never raises for DNS trouble. `timeout` per
    query and `budget` for the whole run default to QUERY_TIMEOUT and RUN_BUDGET."""
    started = time.monotonic()
    timeout = QUERY_TIMEOUT if timeout is None else timeout
    budget = RUN_BUDGET if budget is None else budget
    from_domain = settings.from_domain.lower()
    return_domain = (_domain_of(settings.return_path)
                     if settings.return_path and "@" in settings.return_path else from_domain)
    dkim_domain = (settings.dkim_domain or from_domain).lower().strip(".")
    helo = settings.helo_name.lower().strip(".")
    try:
        resolver, describe = _make_resolver(settings, timeout)
    except dns.exception.DNSException as exc:
        message = (f"No DNS resolver to ask ({exc}); set MAILER_DNS_RESOLVER to "
                   f"address:port.")
        return DnsReport("none", [DnsCheck("Resolver", "", DnsStatus.FAIL, message)])
    lookups = _Lookups(resolver, describe, timeout, budget)
    checks, helo_addresses = _helo(lookups, helo)
    found = [_spf(lookups, return_domain, "Return-Path", settings, True, helo_addresses)]
    if from_domain != return_domain:
        found.append(_spf(lookups, from_domain, "From", settings, False, helo_addresses))
    found += _dkim(lookups, settings, dkim_domain)
    dmarc, tags = _dmarc(lookups, from_domain)
    found += [dmarc, _alignment(settings, from_domain, return_domain, dkim_domain, tags)]
    found.append(_return_path_mx(lookups, return_domain, helo))
    return DnsReport(describe, found + checks, round(time.monotonic() - started, 2))
