"""Changing a reader's address: the new address must confirm before it is used.

The request parks the new address in `readers.pending_email` and emails a
CHANGE_EMAIL link to it (at most one such email per reader per hour). The link
carries the reader id and the new address; it works once, because confirming
clears `pending_email`, and only for the address most recently asked for.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from mailer.common.errors import ValidationError
from mailer.common.tokens import Purpose, TokenError, Tokens
from mailer.common.validation import clean_email
from mailer.jobs import TaskName, enqueue_on_commit
from mailer.models import Reader, ReaderEvent, ReaderStatus, utcnow
from mailer.models.base import DbSession
from mailer.readers.subscriptions import email_key, is_suppressed

CHANGE_EMAIL_INTERVAL = timedelta(hours=1)


def request_change(session: DbSession, reader_id: int, new_email: object,
                   now: datetime | None = None) -> bool:
    """Ask to move `reader_id` to `new_email`. Returns whether an email task was
    queued (it mails only an address that is free). The caller answers the same
    either way. Commits."""
    now = now or utcnow()
    address = clean_email(new_email)
    reader = session.get(Reader, reader_id)
    if reader is None or reader.status != ReaderStatus.CONFIRMED:
        raise ValidationError("Only an active subscription can change its address.", status=409)
    if email_key(address) == reader.email_key:
        raise ValidationError("That is already your address.", {"email": "unchanged"})
    # The same writes, the same answer and the same page whether or not the new
    # address is someone else's or suppressed: the preference centre must not tell
    # who reads us. The email task checks again and mails only a free address.
    reader.pending_email = address
    session.add(ReaderEvent(reader_id=reader.id, kind="email-change-requested", detail={}))
    claimed = session.execute(
        update(Reader)
        .where(Reader.id == reader.id)
        .where((Reader.email_change_sent_at.is_(None))
               | (Reader.email_change_sent_at < now - CHANGE_EMAIL_INTERVAL))
        .values(email_change_sent_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if claimed:
        enqueue_on_commit(session, TaskName.SEND_EMAIL_CHANGE, reader.id)
    session.commit()
    return bool(claimed)


def change_allowed(session: DbSession, reader: Reader) -> bool:
    """Whether the address `reader` asked to move to may be mailed: not another
    reader's, not suppressed."""
    new = reader.pending_email
    if not new:
        return False
    taken = session.scalar(select(Reader.id).where(Reader.email_key == email_key(new),
                                                   Reader.id != reader.id))
    return taken is None and not is_suppressed(session, new)


def change_token(tokens: Tokens, reader: Reader) -> str:
    return tokens.make(Purpose.CHANGE_EMAIL, {"r": reader.id, "e": email_key(reader.pending_email or "")})


def confirm_change(session: DbSession, tokens: Tokens, token: str) -> Reader:
    """Apply the change the link was made for. Commits."""
    data = tokens.load(Purpose.CHANGE_EMAIL, token)
    reader = session.get(Reader, data.get("r")) if isinstance(data.get("r"), int) else None
    if (reader is None or not reader.pending_email
            or email_key(reader.pending_email) != data.get("e")
            or reader.status != ReaderStatus.CONFIRMED):
        raise TokenError("This link is no longer valid.")
    new = reader.pending_email
    if session.scalar(select(Reader.id).where(Reader.email_key == email_key(new))) is not None:
        reader.pending_email = None
        session.commit()
        raise ValidationError("That address is already subscribed; nothing was changed.", status=409)
    reader.email, reader.email_key, reader.pending_email = new, email_key(new), None
    session.add(ReaderEvent(reader_id=reader.id, kind="email-changed", detail={}))
    session.commit()
    return reader
