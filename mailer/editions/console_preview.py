"""Preview and test send of a digest for the console: a thin layer over the
digests work's `previews.preview_digest` and `previews.test_send` (issue 4)."""

from __future__ import annotations

from dataclasses import dataclass

from mailer.config import Settings
from mailer.models import Digest
from mailer.models.base import DbSession
from mailer.mail.senders import Result, Sender
from mailer.editions import previews
from mailer.common.errors import ValidationError


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str  # filled with sample reader values
    text: str
    articles: int
    truncated: int  # cards the size guard left out (Gmail clipping)
    size_bytes: int
    note: str


def build_preview(session: DbSession, settings: Settings, digest: Digest) -> Preview:
    p = previews.preview_digest(session, settings, digest.id)
    return Preview(subject=p.subject, html=p.html, text=p.text, articles=len(p.article_ids),
                   truncated=p.truncated, size_bytes=p.size_bytes, note=p.note)


def parse_addresses(raw: str) -> list[str]:
    parts = [p.strip() for p in raw.replace(";", ",").replace("\n", ",").split(",") if p.strip()]
    if not parts:
        raise ValidationError("Give at least one address.", {"addresses": "required"})
    return parts  # checked (syntax, how many) by previews.test_send


def send_test(session: DbSession, settings: Settings, sender: Sender, digest: Digest,
              addresses: list[str]) -> int:
    """Send the preview to a few addresses now; returns how many the server accepted."""
    results = previews.test_send(session, settings, sender, digest.id, addresses)
    return sum(1 for outcome in results.values() if outcome == Result.SENT)
