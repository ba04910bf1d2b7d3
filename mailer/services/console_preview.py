"""Preview and test send of a digest as its next edition would be, for the console.

The digests work (issue 4) brings its own per-reader `preview_digest` and
`test_send`; until they are wired in, the console uses these: the digest's
next article selection compiled once, filled with a sample reader's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from mailer.config import Settings
from mailer.models import Digest, utcnow
from mailer.senders import Sender
from mailer.services.editions import compile_context, select_articles
from mailer.services.errors import ValidationError
from mailer.services.messages import MessageSkeleton, Recipient, header_safe
from mailer.services.rendering import CompiledEmail, FillTemplate, compile_email, escape_values
from mailer.services.validation import clean_email

MAX_TEST_ADDRESSES = 5


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str
    text: str
    articles: int
    compiled: CompiledEmail


def sample_values(settings: Settings) -> dict[str, str]:
    return {"name": "Sample Reader", "email": "reader@example.org",
            "unsubscribe_url": f"{settings.base_url}/subscribe",
            "preferences_url": f"{settings.base_url}/subscribe",
            "greeting": "Hello Sample Reader,", "track": ""}


def build_preview(session, settings: Settings, digest: Digest,  # type: ignore[no-untyped-def]
                  now: datetime | None = None) -> Preview:
    now = now or utcnow()
    articles = select_articles(session, digest, now)
    edition = SimpleNamespace(id=0, created_at=now)
    compiled = compile_email(digest.template,
                             compile_context(settings, digest, edition, articles))  # type: ignore[arg-type]
    subject = digest.subject or compiled.subject
    values = sample_values(settings)
    return Preview(subject=subject,
                   html=FillTemplate(compiled.html).fill(escape_values(values)),
                   text=FillTemplate(compiled.text).fill(values),
                   articles=len(articles),
                   compiled=CompiledEmail(subject, compiled.html, compiled.text))


def parse_addresses(raw: str) -> list[str]:
    parts = [p for p in raw.replace(";", ",").replace("\n", ",").split(",") if p.strip()]
    if not parts:
        raise ValidationError("Give at least one address.", {"addresses": "required"})
    if len(parts) > MAX_TEST_ADDRESSES:
        raise ValidationError(f"At most {MAX_TEST_ADDRESSES} addresses per test send.",
                              {"addresses": "too many"})
    return [clean_email(p.strip(), "addresses") for p in parts]


def send_test(session, settings: Settings, sender: Sender, digest: Digest,  # type: ignore[no-untyped-def]
              addresses: list[str]) -> int:
    """Send the preview to a few addresses now; returns how many were accepted."""
    preview = build_preview(session, settings, digest)
    skeleton = MessageSkeleton(
        subject=f"[Test] {header_safe(preview.subject)}", html=preview.compiled.html,
        text=preview.compiled.text, mail_from=settings.mail_from, reply_to=settings.reply_to,
        secret=settings.secret_key, edition_id=0, extra_headers={"X-Mailer-Test": "1"},
    )
    accepted = 0
    for address in addresses:
        rcpt = Recipient(reader_id=0, email=address, name="",
                         unsubscribe_url=f"{settings.base_url}/subscribe",
                         preferences_url=f"{settings.base_url}/subscribe")
        outcome = sender.send(settings.mail_from_address, address, skeleton.render(rcpt))
        accepted += bool(outcome.sent)
    return accepted
