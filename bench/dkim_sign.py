"""Per-message DKIM signing cost: a real digest skeleton (10 article cards, ~40-60 KB)
rendered for many readers unsigned, RSA-2048 signed (OpenSSL via cryptography),
RSA + Ed25519, and dkimpy's `dkim.sign` for comparison. CPU time, one process.

    .venv/bin/python bench/run.py dkim [--messages 2000]

Writes bench/results/dkim.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from bench.common import write_result
from mailer.mail.dkim import DkimSigner
from mailer.mail.messages import MessageSkeleton, Recipient
from mailer.mail.rendering import compile_email


def digest_html() -> tuple[str, str, str]:
    articles = [{
        "id": n, "url": f"https://news.example.org/bench/{n}",
        "title": f"Council approves harbour plan, part {n}", "author": "Bench Reporter",
        "summary": "The council voted to rebuild the old harbour wall before winter storms; "
                   "residents asked for a footpath along the quay. " * 2,
        "image_url": f"https://news.example.org/img/{n}.jpg", "published_at": None,
        "topics": ["Local"]} for n in range(10)]
    compiled = compile_email("digest", {
        "digest": {"name": "Bench Daily", "subject": ""},
        "edition": {"id": 1, "date": datetime.now(UTC)}, "articles": articles,
        "base_url": "https://news.example.org",
        "archive_url": "https://news.example.org/archive/1"})
    return compiled.subject, compiled.html, compiled.text


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cpu_per_message(skeleton: MessageSkeleton, count: int) -> float:
    readers = [Recipient(n, f"reader{n}@example{n % 50}.org", f"Reader {n}",
                         f"https://news.example.org/unsubscribe/r{n:x}.abcdefghijklmnopqrstuv",
                         f"https://news.example.org/preferences/r{n:x}.abcdefghijklmnopqrstuv")
               for n in range(count)]
    started = time.process_time()
    for rcpt in readers:
        skeleton.render(rcpt)
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    opts = parser.parse_args()
    subject, html, text = digest_html()
    rsa_key = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ed_key = pem(ed25519.Ed25519PrivateKey.generate())

    def skeleton(signer: DkimSigner | None) -> MessageSkeleton:
        return MessageSkeleton(subject=subject, html=html, text=text,
                               mail_from="Bench News <news@bench.test>", secret="bench",
                               edition_id=1, dkim=signer, list_id='"Bench" <bench-d1.bench.test>',
                               feedback_id="e1:d1:digest:bench.test")

    unsigned = skeleton(None)
    sample = unsigned.render(Recipient(1, "a@example.org", "A", "https://x/u", "https://x/p"))
    results = {
        "message_bytes": len(sample),
        "unsigned_us": cpu_per_message(unsigned, opts.messages),
        "rsa2048_us": cpu_per_message(skeleton(DkimSigner("s", "bench.test", rsa_key)),
                                      opts.messages),
        "rsa2048_ed25519_us": cpu_per_message(
            skeleton(DkimSigner("s", "bench.test", rsa_key, ed_key)), opts.messages),
    }
    import dkim as dkimpy

    few = max(20, opts.messages // 50)
    started = time.process_time()
    for _ in range(few):
        dkimpy.sign(sample, b"s", b"bench.test", rsa_key,
                    canonicalize=(b"relaxed", b"relaxed"))
    results["dkimpy_rsa2048_us"] = (time.process_time() - started) / few * 1e6
    results["signing_cost_us"] = results["rsa2048_us"] - results["unsigned_us"]
    results = {k: round(v, 1) if isinstance(v, float) else v for k, v in results.items()}
    results["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    path = write_result("dkim", results)
    print(f"message                 {results['message_bytes']:,} bytes")
    print(f"render unsigned         {results['unsigned_us']} µs CPU per message")
    print(f"render + RSA-2048       {results['rsa2048_us']} µs "
          f"(signing adds {results['signing_cost_us']} µs)")
    print(f"render + RSA + Ed25519  {results['rsa2048_ed25519_us']} µs")
    print(f"dkimpy sign (reference) {results['dkimpy_rsa2048_us']} µs")
    print(f"JSON                    {path}")


if __name__ == "__main__":
    main()
