"""One-off emails to one reader (confirmation, address change): small, so built
with the standard library from the same template sets."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import or_, select, update

from mailer.common.tokens import Tokens
from mailer.config import Settings
from mailer.mail.messages import domain_of, header_safe
from mailer.mail.rendering import FillTemplate, compile_email, escape_values
from mailer.mail.senders import Outcome, Sender
from mailer.models import Reader, ReaderStatus, utcnow
from mailer.models.base import DbSession
from mailer.readers.address_change import change_token
from mailer.readers.subscriptions import confirmation_token


@functools.lru_cache(maxsize=16)
def _compiled(template: str, base_url: str) -> tuple[str, FillTemplate, FillTemplate]:
    """Subject, text and HTML of a one-off email, compiled once per process: everything
    that differs per reader (the link included) is a placeholder filled per message."""
    compiled = compile_email(template, {"base_url": base_url})
    return compiled.subject, FillTemplate(compiled.text), FillTemplate(compiled.html)


def _values(name: str, email: str, link: str) -> dict[str, str]:
    """The per-reader values of a one-off email (no unsubscribe: nobody is subscribed yet)."""
    name = header_safe(name)
    return {"name": name, "email": email, "confirm_url": link, "unsubscribe_url": "",
            "preferences_url": "", "greeting": f"Hello {name}," if name else "Hello,"}


def build_message(settings: Settings, to_name: str, to_email: str, template: str,
                  values: dict[str, str]) -> bytes:
    subject, text, html_body = _compiled(template, settings.base_url)
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = header_safe(settings.mail_from)
    # Address objects let the email package quote and encode any display name.
    msg["To"] = Address(display_name=header_safe(to_name), addr_spec=header_safe(to_email))
    msg["Subject"] = header_safe(subject)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain=domain_of(settings.mail_from))
    if settings.reply_to:
        msg["Reply-To"] = header_safe(settings.reply_to)
    msg.set_content(text.fill(values), cte="quoted-printable")
    msg.add_alternative(html_body.fill(escape_values(values)), subtype="html",
                        cte="quoted-printable")
    return msg.as_bytes()


def send_confirmation(
    session: DbSession, settings: Settings, tokens: Tokens, sender: Sender, reader_id: int
) -> Outcome | None:
    """Send the double opt-in email. None when there is nothing to confirm any more."""
    if not _take_request(session, reader_id, Reader.confirmation_sent_at,
                         Reader.confirmation_mailed_at, Reader.status == ReaderStatus.PENDING):
        return None
    reader = session.get(Reader, reader_id)
    if reader is None:
        return None
    confirm_url = f"{settings.base_url}/confirm/{confirmation_token(tokens, reader)}"
    data = build_message(settings, reader.name, reader.email, "confirm",
                         _values(reader.name, reader.email, confirm_url))
    return _sent_or_release(session, reader_id, Reader.confirmation_mailed_at,
                            sender.send(settings.mail_from_address, reader.email, data))


def send_email_change(
    session: DbSession, settings: Settings, tokens: Tokens, sender: Sender, reader_id: int
) -> Outcome | None:
    """Email the link that confirms a new address, to the new address.
    None when no change is waiting any more."""
    if not _take_request(session, reader_id, Reader.email_change_sent_at,
                         Reader.email_change_mailed_at,
                         (Reader.status == ReaderStatus.CONFIRMED) & (Reader.pending_email != "")):
        return None
    reader = session.get(Reader, reader_id)
    if reader is None or not reader.pending_email:
        return None
    url = f"{settings.base_url}/change-email/{change_token(tokens, reader)}"
    data = build_message(settings, reader.name, reader.pending_email, "change-email",
                         _values(reader.name, reader.pending_email, url))
    return _sent_or_release(session, reader_id, Reader.email_change_mailed_at,
                            sender.send(settings.mail_from_address, reader.pending_email, data))


def _take_request(session: DbSession, reader_id: int, requested: Any, mailed: Any,
                  condition: Any) -> bool:
    """Claim the latest email request of this reader for this worker (one UPDATE).

    Brokers deliver at least once; a task that runs twice finds the request
    already taken and sends nothing, so a reader never gets the same link twice.
    """
    taken = session.execute(
        update(Reader)
        .where(Reader.id == reader_id, condition, requested.is_not(None),
               or_(mailed.is_(None), mailed != requested))
        .values({mailed: requested})
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return bool(taken)


def _sent_or_release(session: DbSession, reader_id: int, mailed: Any, outcome: Outcome) -> Outcome:
    if outcome.retryable:
        # Not delivered, worth another try: a later round (the beat tick wakes one) takes it.
        # A permanent refusal is not retried, and an unknown outcome (the body may
        # have arrived) is not sent twice.
        session.execute(update(Reader).where(Reader.id == reader_id).values({mailed: None}))
        session.commit()
    return outcome


# A confirmation link is valid for 48 hours; older requests are not worth sending.
CONFIRMATION_VALIDITY = timedelta(hours=48)


def confirmation_is_due(now: datetime) -> Any:
    """Rows whose latest confirmation request no worker has taken yet."""
    return (
        (Reader.status == ReaderStatus.PENDING)
        & (Reader.confirmation_sent_at > now - CONFIRMATION_VALIDITY)
        & or_(Reader.confirmation_mailed_at.is_(None),
              Reader.confirmation_mailed_at != Reader.confirmation_sent_at)
    )


def confirmations_due(session: DbSession, *, now: datetime | None = None, older_than: float = 0,
                      exclude: set[int] | frozenset[int] = frozenset(), limit: int = 100) -> list[int]:
    """Reader ids waiting for a confirmation email, oldest request first
    (`older_than` seconds old at least). Served by a partial index on pending readers."""
    now = now or utcnow()
    query = (select(Reader.id).where(confirmation_is_due(now))
             .order_by(Reader.confirmation_sent_at).limit(limit))
    if older_than:
        query = query.where(Reader.confirmation_sent_at <= now - timedelta(seconds=older_than))
    if exclude:
        query = query.where(Reader.id.not_in(exclude))
    ids = list(session.scalars(query))
    session.commit()
    return ids


@dataclass
class DrainReport:
    sent: int = 0
    not_sent: int = 0
    more: bool = False  # stopped on the time budget with requests still waiting


def send_due_confirmations(
    session: DbSession, settings: Settings, tokens: Tokens, sender: Sender, *,
    rearm: Callable[[], None] = lambda: None, budget_seconds: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> DrainReport:
    """Send every due confirmation email, in rounds, over one SMTP connection.

    `rearm` runs before each read of the due rows: a signup that commits after it
    wakes a new task; one that committed before it is in this read. Each email
    is claimed by `send_confirmation`, so concurrent drains never double up.
    """
    report = DrainReport()
    started = clock()
    tried: set[int] = set()  # failed in this run: retried by a later wake, not in a loop
    while True:
        rearm()
        ids = confirmations_due(session, exclude=tried)
        if not ids:
            return report
        for reader_id in ids:
            if clock() - started > budget_seconds:
                report.more = True
                return report
            outcome = send_confirmation(session, settings, tokens, sender, reader_id)
            if outcome is None:
                continue
            if outcome.sent:
                report.sent += 1
            else:
                report.not_sent += 1
                tried.add(reader_id)
