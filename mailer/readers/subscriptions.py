"""A reader's life: subscribe, confirm (double opt-in), change, unsubscribe."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import TZPATH, available_timezones

from sqlalchemy import (
    JSON,
    Select,
    String,
    Table,
    bindparam,
    delete,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from mailer.common.errors import ValidationError
from mailer.common.tokens import Purpose, TokenError, Tokens
from mailer.common.validation import (
    clean_attributes,
    clean_email,
    clean_long_text,
    clean_slugs,
    clean_text,
    clean_timezone,
)
from mailer.database import on_postgres
from mailer.jobs import TaskName, enqueue_on_commit, wake_on_commit
from mailer.models import (
    EngagementState,
    Frequency,
    Reader,
    ReaderEvent,
    ReaderStatus,
    Suppression,
    SuppressionReason,
    Topic,
    reader_topics,
    utcnow,
)
from mailer.models.base import DbSession, UTCDateTime
from mailer.models.readers import new_token_nonce
from mailer.readers.events import emit_event

CONFIRMATION_INTERVAL = timedelta(hours=1)
# "Email me a new link" and a repeated signup of a confirmed reader: at most one
# such email per address per ten minutes, however often it is asked for.
LINK_INTERVAL = timedelta(minutes=10)


def email_key(email: str) -> str:
    return email.strip().lower()


def email_hash(email: str) -> str:
    return hashlib.sha256(email_key(email).encode()).hexdigest()


def is_suppressed(session: DbSession, email: str) -> bool:
    return (
        session.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash(email)))
        is not None
    )


def suppress(session: DbSession, email: str, reason: str) -> None:
    """Never mail this address again (idempotent)."""
    if not is_suppressed(session, email):
        session.add(Suppression(email_hash=email_hash(email), reason=reason))


def topics_by_slug(session: DbSession, slugs: list[str], field: str = "topics") -> list[Topic]:
    if not slugs:
        return []
    found = list(session.scalars(select(Topic).where(Topic.slug.in_(slugs))))
    missing = sorted(set(slugs) - {t.slug for t in found})
    if missing:
        raise ValidationError(
            f"Unknown topic(s): {', '.join(missing)}.", {field: f"unknown: {', '.join(missing)}"}
        )
    return found


def clean_frequency(raw: object) -> str:
    if raw in (None, ""):
        return Frequency.IMMEDIATE
    if raw not in Frequency.ALL:
        raise ValidationError(
            f"frequency must be one of {', '.join(Frequency.ALL)}.", {"frequency": "invalid"}
        )
    return str(raw)


@dataclass
class SubscribeResult:
    reader_id: int | None
    confirmation_queued: bool
    created: bool


def _set_profile(session: DbSession, reader_id: int, profile: dict[str, object]) -> None:
    if profile:
        session.execute(update(Reader).where(Reader.id == reader_id).values(**profile)
                        .execution_options(synchronize_session=False))


@dataclass(frozen=True)
class _Signup:
    """A signup's values, cleaned once (every path below trusts them)."""
    address: str
    name: str
    frequency: str
    topics: list[Topic]
    source: str
    ip: str
    confirmed: bool
    from_form: bool
    # Time zone and attributes describe the reader; written after the row exists (one
    # statement, only when given), so the hot path of a plain signup is unchanged.
    profile: dict[str, object]


def subscribe(
    session: DbSession,
    *,
    email: object,
    name: object = "",
    topics: object = None,
    frequency: object = None,
    source: str = "form",
    ip: str = "",
    confirmed: bool = False,
    from_form: bool = False,
    timezone: object = None,
    attributes: object = None,
    now: datetime | None = None,
) -> SubscribeResult:
    """Sign a reader up. The caller answers the same whatever happened here
    (no address enumeration). Commits.

    `from_form`: the person is at our signup form (or the embedded box). Only then
    is a confirmed reader emailed their preferences link (an API client re-posting
    its list must not mail everyone), and only then may an address erased at its
    owner's request sign up again, through double opt-in: the suppression stays
    until the new confirmation link is clicked. Imports and the API never pass it."""
    now = now or utcnow()
    profile: dict[str, object] = {}
    zone, extra = clean_timezone(timezone), clean_attributes(attributes)
    if timezone is not None:
        profile["timezone"] = zone
    if attributes is not None:
        profile["attributes"] = extra
    signup = _Signup(
        address=clean_email(email), name=clean_text(name, "name", 200),
        frequency=clean_frequency(frequency),
        topics=topics_by_slug(session, clean_slugs(topics)),
        source=clean_text(source, "source", 200), ip=ip[:64], confirmed=confirmed,
        from_form=from_form, profile=profile,
    )
    return _subscribe(session, signup, now)


def _subscribe(session: DbSession, signup: _Signup, now: datetime) -> SubscribeResult:
    if on_postgres(session) and not signup.confirmed:
        fresh = _insert_new_reader_pg(session, signup.address, signup.name, signup.frequency,
                                      [t.id for t in signup.topics], signup.source, signup.ip, now)
        if fresh is not None and not (signup.from_form and fresh.reader_id is None):
            if fresh.reader_id is not None:
                _set_profile(session, fresh.reader_id, signup.profile)
                wake_on_commit(session, TaskName.SEND_CONFIRMATIONS)
                emit_event(session, "reader.subscribed",
                           reader_event_data(fresh.reader_id, signup.address, ReaderStatus.PENDING,
                                             signup.source), now)
            session.commit()
            return fresh
        # The address is known: the general path below decides what to do.

    # One round trip answers both questions: suppressed? known (and which row)?
    suppressed_q = (select(Suppression.reason)
                    .where(Suppression.email_hash == email_hash(signup.address)).scalar_subquery())
    known_q = select(Reader.id).where(Reader.email_key == email_key(signup.address)).scalar_subquery()
    suppressed, known_id = session.execute(select(suppressed_q, known_q)).one()
    if suppressed and not (suppressed == SuppressionReason.ERASED and signup.from_form
                           and not signup.confirmed):
        # Erased, bounced or complained: never re-added, and we say nothing.
        session.commit()
        return SubscribeResult(None, False, False)
    if known_id is None:
        return _insert_new_reader(session, signup, now)
    return _subscribe_known(session, signup, known_id, now)


def _insert_new_reader(session: DbSession, signup: _Signup, now: datetime) -> SubscribeResult:
    """The hot path of a signup: plain INSERTs (no unit-of-work bookkeeping). Only a
    SELECT ran before it, so a rollback on a duplicate loses nothing."""
    confirmed = signup.confirmed
    try:
        readers = cast(Table, Reader.__table__)
        reader_id = session.execute(
            insert(readers).returning(readers.c.id),
            {
                "email": signup.address, "email_key": email_key(signup.address),
                "name": signup.name, "frequency": signup.frequency,
                "status": ReaderStatus.CONFIRMED if confirmed else ReaderStatus.PENDING,
                "confirm_nonce": secrets.token_hex(8), "consent_at": now,
                "consent_source": signup.source, "consent_ip": signup.ip,
                "confirmed_at": now if confirmed else None,
                # A brand-new row has sent nothing yet: it takes the hour's slot.
                "confirmation_sent_at": None if confirmed else now,
                "created_at": now,
            },
        ).scalar_one()
    except IntegrityError:
        # The same address was posted twice at once: the other request won.
        session.rollback()
        return _subscribe(session, signup, now)
    _set_profile(session, reader_id, signup.profile)
    if signup.topics:
        session.execute(insert(reader_topics), [{"reader_id": reader_id, "topic_id": t.id}
                                                for t in signup.topics])
    session.execute(insert(cast(Table, ReaderEvent.__table__)), {
        "reader_id": reader_id, "kind": "subscribed", "created_at": now, "note": "",
        "detail": {"source": signup.source, "ip": signup.ip, "confirmed": confirmed}})
    if not confirmed:
        wake_on_commit(session, TaskName.SEND_CONFIRMATIONS)
    status = ReaderStatus.CONFIRMED if confirmed else ReaderStatus.PENDING
    emit_event(session, "reader.subscribed",
               reader_event_data(reader_id, signup.address, status, signup.source), now)
    if confirmed:
        emit_event(session, "reader.confirmed",
                   reader_event_data(reader_id, signup.address, ReaderStatus.CONFIRMED,
                                     signup.source), now)
    session.commit()
    return SubscribeResult(reader_id, not confirmed, True)


def _subscribe_known(session: DbSession, signup: _Signup, known_id: int,
                     now: datetime) -> SubscribeResult:
    """The address already has a reader row: confirm it, send a fresh opt-in, mail a
    confirmed reader their link, or (bounced, complained) do nothing."""
    reader = session.get(Reader, known_id)
    if reader is None:  # erased between the two statements
        session.commit()
        return SubscribeResult(None, False, False)
    reader_id = reader.id
    if not signup.from_form:
        # The publisher's own systems (API, import) keep these up to date; a form post
        # naming someone else's address must not change them.
        _set_profile(session, reader_id, signup.profile)
    if reader.status == ReaderStatus.CONFIRMED:
        if signup.from_form and not signup.confirmed:
            # They may have lost their links: mail the preferences link, not a new opt-in.
            _request_link_email(session, reader_id, now)
        session.commit()
        return SubscribeResult(reader_id, False, False)
    if signup.confirmed:
        reader.status = ReaderStatus.CONFIRMED
        reader.confirmed_at = now
        reader.consent_at, reader.consent_source = now, signup.source
        session.add(ReaderEvent(reader_id=reader.id, kind="confirmed",
                                detail={"source": signup.source}))
        emit_event(session, "reader.confirmed",
                   reader_event_data(reader.id, reader.email, reader.status, signup.source), now)
        session.commit()
        return SubscribeResult(reader_id, False, False)
    if reader.status not in (ReaderStatus.UNSUBSCRIBED, ReaderStatus.PENDING):
        session.commit()  # bounced or complained: do not mail
        return SubscribeResult(reader_id, False, False)
    if reader.status == ReaderStatus.UNSUBSCRIBED:
        # Coming back: keep what they chose, send a fresh link.
        reader.status = ReaderStatus.PENDING
        reader.confirm_nonce = secrets.token_hex(8)
        reader.consent_at, reader.consent_source, reader.consent_ip = now, signup.source, signup.ip
        if signup.topics:
            reader.topics = signup.topics
        emit_event(session, "reader.subscribed",
                   reader_event_data(reader.id, reader.email, reader.status, signup.source), now)
    queued = _claim_confirmation_slot(session, reader.id, now)
    if queued:
        wake_on_commit(session, TaskName.SEND_CONFIRMATIONS)
    session.commit()
    return SubscribeResult(reader_id, queued, False)


@functools.cache
def _new_reader_statement() -> Select[Any]:
    """Built once per process: constructing this CTE costs more CPU than running it."""
    readers = cast(Table, Reader.__table__)
    events = cast(Table, ReaderEvent.__table__)
    now = bindparam("now", type_=UTCDateTime())
    suppressed = select(Suppression.id).where(Suppression.email_hash == bindparam("hash")).exists()
    row = select(
        bindparam("email", type_=String), bindparam("email_key", type_=String),
        bindparam("name", type_=String), bindparam("frequency", type_=String),
        literal(ReaderStatus.PENDING, String), bindparam("nonce", type_=String),
        bindparam("token_nonce", type_=String), now,
        bindparam("source", type_=String), bindparam("ip", type_=String),
        # A brand-new row has sent nothing yet: it takes the hour's confirmation slot.
        now, now,
    ).where(~suppressed)
    new_reader = (
        pg_insert(readers)
        .from_select(["email", "email_key", "name", "frequency", "status", "confirm_nonce",
                      "token_nonce", "consent_at", "consent_source", "consent_ip",
                      "confirmation_sent_at", "created_at"], row, include_defaults=False)
        .on_conflict_do_nothing(index_elements=["email_key"])
        .returning(readers.c.id)
        .cte("new_reader")
    )
    topic_rows = (
        insert(reader_topics)
        .from_select(["reader_id", "topic_id"],
                     select(new_reader.c.id, Topic.id)
                     .select_from(new_reader.join(Topic, true()))  # each chosen topic
                     .where(Topic.id.in_(bindparam("topic_ids", expanding=True))))
        .cte("new_topics")
    )
    event_rows = (
        insert(events)
        .from_select(["reader_id", "kind", "created_at", "note", "detail"], select(
            new_reader.c.id, literal("subscribed", String), now, literal("", String),
            bindparam("detail", type_=JSON)))
        .cte("new_event")
    )
    return select(select(new_reader.c.id).scalar_subquery(), suppressed).add_cte(
        topic_rows, event_rows)


def _insert_new_reader_pg(session: DbSession, address: str, name: str, frequency: str,
                          topic_ids: list[int], source: str, ip: str,
                          now: datetime) -> SubscribeResult | None:
    """The hot path of a signup on PostgreSQL: one statement inserts a new reader,
    their topics and the consent event, unless the address is suppressed or known.

    Returns the result for a new or suppressed address; None when the address is
    already a reader (nothing was written). ON CONFLICT waits for a concurrent
    insert of the same address, so two posts at once make one reader.
    """
    reader_id, was_suppressed = session.execute(_new_reader_statement(), {
        "email": address, "email_key": email_key(address), "hash": email_hash(address),
        "name": name, "frequency": frequency, "nonce": secrets.token_hex(8), "now": now,
        "token_nonce": new_token_nonce(),
        "source": source, "ip": ip[:64], "topic_ids": topic_ids,
        "detail": {"source": source, "ip": ip[:64], "confirmed": False},
    }).one()
    if reader_id is not None:
        return SubscribeResult(reader_id, True, True)
    if was_suppressed:
        # Erased, bounced or complained: never re-added, and we say nothing.
        return SubscribeResult(None, False, False)
    return None


def _claim_confirmation_slot(session: DbSession, reader_id: int, now: datetime,
                             interval: timedelta = CONFIRMATION_INTERVAL) -> bool:
    """At most one confirmation email per address per `interval`, however often the
    form is posted, even by concurrent requests (a conditional UPDATE)."""
    result = session.execute(
        update(Reader)
        .where(Reader.id == reader_id)
        .where(
            (Reader.confirmation_sent_at.is_(None))
            | (Reader.confirmation_sent_at < now - interval)
        )
        .values(confirmation_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _request_link_email(session: DbSession, reader_id: int, now: datetime) -> bool:
    """Record a request for the "your link" email (conditional UPDATE: one per
    LINK_INTERVAL) and queue its task for after the commit."""
    claimed = session.execute(
        update(Reader)
        .where(Reader.id == reader_id,
               (Reader.link_sent_at.is_(None)) | (Reader.link_sent_at < now - LINK_INTERVAL))
        .values(link_sent_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if claimed:
        enqueue_on_commit(session, TaskName.SEND_READER_LINK, reader_id)
    return bool(claimed)


def request_link(session: DbSession, email: object, *, now: datetime | None = None) -> None:
    """"Email me a new link". A confirmed or unsubscribed reader gets their
    preferences link; a pending one a fresh confirmation; anyone else nothing.
    The caller answers the same in every case. Commits."""
    now = now or utcnow()
    address = clean_email(email)
    reader = session.scalar(select(Reader).where(Reader.email_key == email_key(address)))
    if reader is not None:
        if reader.status in (ReaderStatus.CONFIRMED, ReaderStatus.UNSUBSCRIBED):
            _request_link_email(session, reader.id, now)
        elif reader.status == ReaderStatus.PENDING:
            if _claim_confirmation_slot(session, reader.id, now, LINK_INTERVAL):
                wake_on_commit(session, TaskName.SEND_CONFIRMATIONS)
    session.commit()


def reader_event_data(reader_id: int, email: str, status: str, source: str) -> dict[str, Any]:
    """The `data` of a reader.* event."""
    return {"reader": {"id": reader_id, "email": email, "status": status}, "source": source}


def confirmation_token(tokens: Tokens, reader: Reader) -> str:
    return tokens.make(Purpose.CONFIRM, {"r": reader.id, "n": reader.confirm_nonce})


@dataclass
class Confirmation:
    reader: Reader
    already: bool  # the link had been used before: nothing changed


def confirm(session: DbSession, tokens: Tokens, token: str) -> Confirmation:
    """Confirm from the emailed link. Each link works once: confirming rotates the
    nonce, so a second click (or a leaked link) changes nothing and grants nothing
    beyond an "already confirmed" page. Commits."""
    data = tokens.load(Purpose.CONFIRM, token)
    reader = session.get(Reader, data.get("r")) if isinstance(data.get("r"), int) else None
    if reader is None:
        raise TokenError("This confirmation link is no longer valid.")
    if reader.confirm_nonce != data.get("n"):
        if reader.status == ReaderStatus.CONFIRMED:
            return Confirmation(reader, already=True)
        raise TokenError("This confirmation link is no longer valid.")
    if reader.status != ReaderStatus.PENDING:
        raise TokenError("This confirmation link is no longer valid.")
    reader.status = ReaderStatus.CONFIRMED
    reader.confirmed_at = utcnow()
    reader.confirm_nonce = secrets.token_hex(8)
    # The owner of an address erased at their request opted in again: lift that
    # suppression (never a bounce or complaint one).
    session.execute(
        delete(Suppression)
        .where(Suppression.email_hash == email_hash(reader.email),
               Suppression.reason == SuppressionReason.ERASED)
        .execution_options(synchronize_session=False))
    session.add(ReaderEvent(reader_id=reader.id, kind="confirmed", detail={}))
    emit_event(session, "reader.confirmed",
               reader_event_data(reader.id, reader.email, reader.status, "link"), reader.confirmed_at)
    session.commit()
    return Confirmation(reader, already=False)


def unsubscribe(
    session: DbSession, reader_id: int, *, source: str, edition_id: int | None = None
) -> Reader | None:
    """Effective when this returns (committed). Idempotent."""
    reader = session.get(Reader, reader_id)
    if reader is None:
        return None
    if reader.status in (ReaderStatus.CONFIRMED, ReaderStatus.PENDING):
        reader.status = ReaderStatus.UNSUBSCRIBED
        reader.unsubscribed_at = utcnow()
        reader.confirm_nonce = secrets.token_hex(8)  # old confirm links stop working
        session.add(ReaderEvent(reader_id=reader.id, edition_id=edition_id,
                                kind="unsubscribed", detail={"source": source}))
        emit_event(session, "reader.unsubscribed",
                   reader_event_data(reader.id, reader.email, reader.status, source))
    session.commit()
    return reader


UNSUBSCRIBE_REASONS = {
    "too-many": "Too many emails",
    "not-relevant": "The stories are not relevant to me",
    "never-signed-up": "I never signed up",
    "other-source": "I get the news elsewhere",
    "other": "Another reason",
}
MAX_REASON_TEXT = 500


def unsubscribe_by_link(session: DbSession, reader_id: int, *, source: str,
                        reason: object = "", comment: object = "") -> str | None:
    """The one-click path: one conditional UPDATE (plus its event), committed before
    this returns. Returns the reader's address, or None for an unknown reader.

    `reason` (one of UNSUBSCRIBE_REASONS) and `comment` are optional and never stop
    anyone leaving: anything else is dropped, a long comment is cut."""
    detail: dict[str, str] = {"source": source}
    if isinstance(reason, str) and reason in UNSUBSCRIBE_REASONS:
        detail["reason"] = reason
    if isinstance(comment, str) and comment.strip():
        detail["comment"] = " ".join(clean_long_text(comment[:MAX_REASON_TEXT * 2], "comment",
                                                     MAX_REASON_TEXT * 2).split())[:MAX_REASON_TEXT]
    readers = cast(Table, Reader.__table__)
    now = utcnow()
    email = session.execute(
        update(readers)
        .where(readers.c.id == reader_id,
               readers.c.status.in_([ReaderStatus.CONFIRMED, ReaderStatus.PENDING]))
        .values(status=ReaderStatus.UNSUBSCRIBED, unsubscribed_at=now,
                confirm_nonce=secrets.token_hex(8))  # old confirm links stop working
        .returning(readers.c.email)
    ).scalar()
    if email is None:  # already unsubscribed (harmless) or no such reader
        email = session.execute(select(readers.c.email).where(readers.c.id == reader_id)).scalar()
    else:
        session.execute(insert(cast(Table, ReaderEvent.__table__)), {
            "reader_id": reader_id, "kind": "unsubscribed", "created_at": now, "note": "",
            "detail": detail})
        emit_event(session, "reader.unsubscribed",
                   reader_event_data(reader_id, email, ReaderStatus.UNSUBSCRIBED, source), now)
    session.commit()
    return email


def update_preferences(
    session: DbSession, reader_id: int, *, name: object, topics: object, frequency: object,
    alerts: object = None, timezone: object = None,
) -> Reader:
    """`timezone`: an IANA name, or "" for the newsletter's own zone; None leaves it."""
    reader = session.get(Reader, reader_id)
    if reader is None:
        raise ValidationError("Unknown reader.", status=404)
    if timezone is not None:  # checked first: a bad zone changes nothing
        reader.timezone = clean_timezone(timezone)
    reader.name = clean_text(name, "name", 200)
    reader.topics = topics_by_slug(session, clean_slugs(topics))
    reader.frequency = clean_frequency(frequency)
    if reader.frequency != Frequency.PAUSED:  # a choice of theirs ends a timed pause
        reader.paused_until = None
        reader.resume_frequency = ""
        # ... and answers the inactive-reader policy: they are here, reading.
        if reader.engagement_state in (EngagementState.ASKED, EngagementState.PAUSED):
            reader.engagement_state = EngagementState.KEPT
            reader.engagement_changed_at = utcnow()
    if alerts is not None:  # None: the caller does not offer the choice
        reader.alerts = bool(alerts)
    session.add(ReaderEvent(reader_id=reader.id, kind="preferences",
                            detail={"frequency": reader.frequency,
                                    "topics": [t.slug for t in reader.topics],
                                    "timezone": reader.timezone}))
    session.commit()
    return reader


def browser_timezone(value: object) -> str | None:
    """The zone a signup form's script read from the browser, if this system knows
    it, under its current name (browsers report some old ones: Asia/Calcutta for
    Asia/Kolkata); None otherwise (the reader then gets the newsletter's zone).
    Never an error: the visitor neither saw nor typed it."""
    try:
        zone = clean_timezone(value)
    except ValidationError:
        return None
    return _zone_links().get(zone, zone) or None


@functools.cache
def _zone_links() -> dict[str, str]:
    """Old zone name -> current name, from the system's tz database (its links)."""
    for base in TZPATH:
        path = Path(base) / "tzdata.zi"
        if path.is_file():
            return {words[2]: words[1] for words in
                    (line.split() for line in path.read_text().splitlines())
                    if len(words) >= 3 and words[0] == "L"}
    return {}


@functools.cache
def timezone_choices() -> tuple[str, ...]:
    """IANA zone names a reader may pick, by name (old aliases left out)."""
    legacy = ("Etc/", "SystemV/", "US/", "posix/", "right/", "Brazil/", "Canada/", "Chile/",
              "Mexico/")
    links = _zone_links()
    names = sorted(z for z in available_timezones()
                   if "/" in z and not z.startswith(legacy) and z not in links)
    return (*names, "UTC")
