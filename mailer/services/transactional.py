"""One-off emails to one reader (confirmation, address change): small, so built
with the standard library from the same template sets."""

from __future__ import annotations

from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import or_, update

from mailer.config import Settings
from mailer.models import Reader, ReaderStatus, utcnow
from mailer.models.base import DbSession
from mailer.senders import Outcome, Sender
from mailer.services.address_change import change_token
from mailer.services.messages import domain_of, header_safe
from mailer.services.rendering import FillTemplate, compile_email, escape_values
from mailer.services.subscriptions import confirmation_token
from mailer.services.tokens import Tokens


def build_message(settings: Settings, to_name: str, to_email: str, template: str,
                  context: dict[str, object], values: dict[str, str]) -> bytes:
    compiled = compile_email(template, {"base_url": settings.base_url, **context})
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = header_safe(settings.mail_from)
    # Address objects let the email package quote and encode any display name.
    msg["To"] = Address(display_name=header_safe(to_name), addr_spec=header_safe(to_email))
    msg["Subject"] = header_safe(compiled.subject)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain=domain_of(settings.mail_from))
    if settings.reply_to:
        msg["Reply-To"] = header_safe(settings.reply_to)
    msg.set_content(FillTemplate(compiled.text).fill(values), cte="quoted-printable")
    html_values = escape_values(values)
    msg.add_alternative(FillTemplate(compiled.html).fill(html_values), subtype="html",
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
    values = {"name": header_safe(reader.name), "email": reader.email,
              "unsubscribe_url": "", "preferences_url": "",
              "greeting": f"Hello {header_safe(reader.name)}," if reader.name else "Hello,"}
    data = build_message(settings, reader.name, reader.email, "confirm",
                         {"confirm_url": confirm_url}, values)
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
    name = header_safe(reader.name)
    values = {"name": name, "email": reader.pending_email, "unsubscribe_url": "",
              "preferences_url": "", "greeting": f"Hello {name}," if name else "Hello,"}
    data = build_message(settings, reader.name, reader.pending_email, "change-email",
                         {"confirm_url": url}, values)
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
    if not outcome.sent:
        # Not delivered: let a later task (or a new signup post) try again.
        session.execute(update(Reader).where(Reader.id == reader_id).values({mailed: None}))
        session.commit()
    return outcome
