"""One-off emails to one reader (confirmation, address change): small, so built
with the standard library from the same template sets."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from mailer.common.tokens import Purpose, Tokens
from mailer.config import Settings
from mailer.mail.dkim import DkimSigner
from mailer.mail.messages import MessageSkeleton, header_safe
from mailer.mail.outgoing import dkim_signer, envelope_sender, feedback_id
from mailer.mail.rendering import compile_email
from mailer.mail.senders import Outcome, Sender
from mailer.models import Reader, ReaderStatus, utcnow
from mailer.models.base import DbSession
from mailer.readers.address_change import change_allowed, change_token
from mailer.readers.links import reader_link_token
from mailer.readers.publication import Publication, load_publication, publication_defaults
from mailer.readers.subscriptions import confirmation_token


@functools.lru_cache(maxsize=16)
def _skeleton(template: str, base_url: str, mail_from: str, reply_to: str, secret: str,
              feedback: str, dkim: DkimSigner | None, publication: Publication) -> MessageSkeleton:
    """A one-off email's skeleton, compiled once per process (and per publication
    settings): everything that differs per reader (the link included) is a
    placeholder filled per message."""
    compiled = compile_email(template, {"base_url": base_url, "publication": publication.context()})
    return MessageSkeleton(subject=compiled.subject, html=compiled.html, text=compiled.text,
                           mail_from=publication.from_header(mail_from), reply_to=reply_to,
                           secret=secret, edition_id=0, feedback_id=feedback, dkim=dkim,
                           one_off=True)


# What a name may look like in an email to an address nobody has confirmed yet:
# a signup form is otherwise a way to mail any text (a link, an advert) to anyone.
MAX_UNCONFIRMED_NAME = 40
_LINK_LIKE = re.compile(r"://|www\.|@|[a-z0-9-]\.[a-z]{2,}\b|[<>\[\]{}]", re.IGNORECASE)


def unconfirmed_name(name: str) -> str:
    """The reader's name if it is short and carries no link, else "" (the email
    then just says "Hello,")."""
    name = header_safe(name)
    if len(name) > MAX_UNCONFIRMED_NAME or _LINK_LIKE.search(name):
        return ""
    return name


def _values(name: str, email: str, link: str) -> dict[str, str]:
    """The per-reader values of a one-off email (no unsubscribe: nobody is subscribed yet)."""
    name = header_safe(name)
    return {"name": name, "email": email, "confirm_url": link, "unsubscribe_url": "",
            "preferences_url": "", "greeting": f"Hello {name}," if name else "Hello,"}


def build_message(settings: Settings, to_name: str, to_email: str, template: str,
                  values: dict[str, str], publication: Publication | None = None) -> bytes:
    """A confirmation or address-change email (DKIM-signed when configured)."""
    publication = publication or publication_defaults(settings)
    skeleton = _skeleton(template, settings.base_url, settings.mail_from, settings.reply_to,
                         settings.secret_key, feedback_id(settings, template, "transactional"),
                         dkim_signer(settings), publication)
    return skeleton.render_values(to_name, to_email, values, skeleton.message_id(0))


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
    name = unconfirmed_name(reader.name)
    data = build_message(settings, name, reader.email, "confirm",
                         _values(name, reader.email, confirm_url),
                         load_publication(session, settings))
    return _sent_or_release(session, reader_id, Reader.confirmation_mailed_at,
                            sender.send(envelope_sender(settings), reader.email, data))


def send_reader_link(
    session: DbSession, settings: Settings, tokens: Tokens, sender: Sender, reader_id: int
) -> Outcome | None:
    """Email a reader the link to their preferences ("email me a new link", or a
    confirmed reader signing up again). None when no request is waiting any more."""
    if not _take_request(session, reader_id, Reader.link_sent_at, Reader.link_mailed_at,
                         Reader.status.in_([ReaderStatus.CONFIRMED, ReaderStatus.UNSUBSCRIBED])):
        return None
    reader = session.get(Reader, reader_id)
    if reader is None:
        return None
    url = f"{settings.base_url}/preferences/{reader_link_token(tokens, Purpose.PREFERENCES, reader)}"
    values = {**_values(reader.name, reader.email, ""), "preferences_url": url}
    data = build_message(settings, reader.name, reader.email, "reader-link", values)
    return _sent_or_release(session, reader_id, Reader.link_mailed_at,
                            sender.send(settings.mail_from_address, reader.email, data))


# A link request older than this is not worth sending any more.
LINK_VALIDITY = timedelta(hours=1)


def reader_links_due(session: DbSession, *, now: datetime | None = None, older_than: float = 30,
                     limit: int = 50) -> list[int]:
    """Link requests no worker has taken (their task was lost), for the tick to re-queue."""
    now = now or utcnow()
    ids = list(session.scalars(
        select(Reader.id)
        .where(Reader.link_sent_at > now - LINK_VALIDITY,
               Reader.link_sent_at <= now - timedelta(seconds=older_than),
               or_(Reader.link_mailed_at.is_(None), Reader.link_mailed_at != Reader.link_sent_at))
        .limit(limit)))
    session.commit()
    return ids


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
    if reader is None or not reader.pending_email or not change_allowed(session, reader):
        return None
    url = f"{settings.base_url}/change-email/{change_token(tokens, reader)}"
    name = unconfirmed_name(reader.name)
    data = build_message(settings, name, reader.pending_email, "change-email",
                         _values(name, reader.pending_email, url),
                         load_publication(session, settings))
    return _sent_or_release(session, reader_id, Reader.email_change_mailed_at,
                            sender.send(envelope_sender(settings), reader.pending_email,
                                                        data))


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
