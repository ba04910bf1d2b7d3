"""Preview a digest (or a draft edition) and send test copies of it.

Nothing here writes to the database: a preview compiles what the next edition
would carry for a reader who wants every topic, fills in sample reader values,
and reports the size against Gmail's clipping limit.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mailer.common.errors import NotFound, ValidationError
from mailer.common.validation import clean_email
from mailer.config import Settings
from mailer.content.digests import MAX_ID, find_digest
from mailer.editions import planning
from mailer.editions.compile import compile_selection, web_variant
from mailer.editions.selection import select_articles
from mailer.mail.messages import MessageSkeleton, Recipient, subscribed_note
from mailer.mail.outgoing import dkim_signer, envelope_sender, feedback_id
from mailer.mail.rendering import GMAIL_CLIP_BYTES, FillTemplate
from mailer.mail.senders import Sender
from mailer.models import Article, Edition, EditionVariant, utcnow
from mailer.models.base import DbSession
from mailer.readers import load_publication

WIDTHS = {"desktop": 600, "mobile": 375}
MAX_TEST_ADDRESSES = 10


@dataclass
class Preview:
    digest_id: int
    edition_id: int | None
    subject: str
    html: str  # filled with sample reader values
    text: str
    size_bytes: int
    truncated: int  # cards the size guard left out
    article_ids: list[int]
    note: str = ""
    clip_limit_bytes: int = GMAIL_CLIP_BYTES
    widths: dict[str, int] = field(default_factory=lambda: dict(WIDTHS))
    # compiled, with placeholders: what test sends fill per address
    compiled_html: str = field(default="", repr=False)
    compiled_text: str = field(default="", repr=False)

    @property
    def clipped(self) -> bool:
        return self.size_bytes > self.clip_limit_bytes

    def json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("compiled_html")
        data.pop("compiled_text")
        data["clipped"] = self.clipped
        if self.truncated:
            data["warning"] = (f"{self.truncated} article card(s) left out to stay under Gmail's "
                               f"~{GMAIL_CLIP_BYTES // 1000} KB clipping limit.")
        return data


def sample_values(settings: Settings, email: str = "reader@example.org", name: str = "Alex Reader"
                  ) -> dict[str, str]:
    return {
        "name": name,
        "email": email,
        "greeting": f"Hello {name}," if name else "Hello,",
        "subscribed_note": subscribed_note(email),
        "unsubscribe_url": f"{settings.base_url}/subscribe",
        "preferences_url": f"{settings.base_url}/subscribe",
    }


def _filled(settings: Settings, compiled_html: str, compiled_text: str) -> tuple[str, str]:
    values = sample_values(settings)
    escaped = {k: html.escape(v, quote=True) for k, v in values.items()}
    return FillTemplate(compiled_html).fill(escaped), FillTemplate(compiled_text).fill(values)


def preview_digest(session: DbSession, settings: Settings, digest_id: object,
                   now: datetime | None = None) -> Preview:
    """What the digest's next edition looks like for a reader of every topic."""
    now = now or utcnow()
    digest = find_digest(session, digest_id)
    articles = select_articles(session, digest, now)
    note = ""
    if not articles:
        pool = planning.article_pool(session, digest, now)[: digest.max_articles]
        articles = list(session.scalars(select(Article).where(Article.id.in_([a.id for a in pool]))))
        articles.sort(key=lambda a: (a.published_at, a.id), reverse=True)
        note = ("No new articles since the last edition: showing the latest ones."
                if articles else "No articles in this digest's topics yet.")
    # A stand-in edition, never added to the session.
    draft = Edition(id=0, digest_id=digest.id, created_at=now, article_ids=[a.id for a in articles])
    draft.digest = digest
    compiled = compile_selection(session, settings, draft, [a.id for a in articles])
    filled_html, filled_text = _filled(settings, compiled.email.html, compiled.email.text)
    return Preview(digest.id, None, compiled.email.subject, filled_html, filled_text,
                   len(filled_html.encode("utf-8")), compiled.truncated, compiled.article_ids, note,
                   compiled_html=compiled.email.html, compiled_text=compiled.email.text)


def preview_edition(session: DbSession, settings: Settings, edition_id: int) -> Preview:
    """An existing edition (a draft waiting for approval included) as it was compiled."""
    edition = session.get(Edition, edition_id) if 0 < edition_id <= MAX_ID else None
    if edition is None:
        raise NotFound(f"No edition {edition_id}.")
    variant: EditionVariant | None = web_variant(session, edition)
    if variant is not None:
        subject, compiled_html, compiled_text = variant.subject, variant.html, variant.text
        truncated, ids = variant.truncated, list(variant.article_ids)
    else:
        compiled = compile_selection(session, settings, edition, list(edition.article_ids or []))
        subject, compiled_html, compiled_text = (compiled.email.subject, compiled.email.html,
                                                 compiled.email.text)
        truncated, ids = compiled.truncated, compiled.article_ids
    filled_html, filled_text = _filled(settings, compiled_html, compiled_text)
    return Preview(edition.digest_id, edition.id, subject, filled_html, filled_text,
                   len(filled_html.encode("utf-8")), truncated, ids,
                   compiled_html=compiled_html, compiled_text=compiled_text)


def preview_page(preview: Preview, width: str = "desktop") -> str:
    """A page showing the email in a frame of desktop or mobile width."""
    if width not in WIDTHS:
        raise ValidationError("width must be 'desktop' or 'mobile'.", {"width": "invalid"})
    pixels = WIDTHS[width]
    warning = ""
    if preview.truncated:
        warning = (f'<p class="warning">{preview.truncated} article card(s) were left out to stay '
                   f"under Gmail's clipping limit.</p>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Preview: {html.escape(preview.subject)}</title>"
        "<style>body{margin:0;background:#ddd;font-family:sans-serif}"
        ".bar{padding:8px 12px;background:#fff;font-size:14px}.warning{color:#9b1c1c}"
        f"iframe{{display:block;margin:12px auto;border:0;background:#fff;width:{pixels}px;"
        "height:calc(100vh - 90px)}</style></head><body>"
        f"<div class='bar'><strong>{html.escape(preview.subject)}</strong> · {width} {pixels}px · "
        f"{preview.size_bytes // 1024} KB{warning}</div>"
        f'<iframe title="email preview" sandbox srcdoc="{html.escape(preview.html, quote=True)}">'
        "</iframe></body></html>"
    )


def test_send(session: DbSession, settings: Settings, sender: Sender, digest_id: object,
              addresses: object, spend: Callable[[int], None] | None = None) -> dict[str, str]:
    """Send the digest's preview to a few addresses, marked as a test.
    Returns {address: result}. No ledger rows: test copies are not deliveries.
    `spend(n)` is called with the number of addresses before anything is sent
    (the caller's hourly cap; it raises to refuse)."""
    if isinstance(addresses, str):
        addresses = [a.strip() for a in addresses.replace(";", ",").replace("\n", ",").split(",")
                     if a.strip()]
    if not isinstance(addresses, list) or not addresses:
        raise ValidationError("Give one or more addresses to send the test to.",
                              {"addresses": "required"})
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise ValidationError(f"At most {MAX_TEST_ADDRESSES} test addresses.",
                              {"addresses": "too many"})
    clean = [clean_email(a, "addresses") for a in addresses]
    preview = preview_digest(session, settings, digest_id)
    if spend is not None:
        spend(len(clean))
    skeleton = MessageSkeleton(
        subject=f"[Test] {preview.subject}",
        html=preview.compiled_html,
        text=preview.compiled_text,
        mail_from=load_publication(session, settings).from_header(settings.mail_from),
        reply_to=settings.reply_to,
        secret=settings.secret_key,
        edition_id=0,
        extra_headers={"X-Mailer-Test": "1"},
        feedback_id=feedback_id(settings, "test", "digest"),
        dkim=dkim_signer(settings),
        one_off=True,  # a fresh Message-ID per copy, and Auto-Submitted
        list_headers=True,  # shows the editor the unsubscribe headers readers get
    )
    results: dict[str, str] = {}
    for n, address in enumerate(clean):
        values = sample_values(settings, email=address, name="")
        rcpt = Recipient(reader_id=-(n + 1), email=address, name="",
                         unsubscribe_url=values["unsubscribe_url"],
                         preferences_url=values["preferences_url"])
        outcome = sender.send(envelope_sender(settings), address, skeleton.render(rcpt))
        results[address] = (outcome.result if outcome.sent
                            else f"{outcome.result}: {outcome.code} {outcome.message}")
    return results
