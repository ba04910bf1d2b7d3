"""Start an edition and move it through its states (pause, resume, approve, cancel)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update

from mailer.common.errors import Conflict, NotFound
from mailer.config import Settings
from mailer.content.digests import find_digest
from mailer.editions import planning
from mailer.editions.selection import eligible_readers, select_articles
from mailer.jobs import TaskName, enqueue_on_commit, start_lanes_on_commit
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Reader,
    utcnow,
)
from mailer.models.base import DbSession


def start_edition(
    session: DbSession,
    digest_ref: object,
    *,
    created_by: str = "",
    slot: str | None = None,
    now: datetime | None = None,
) -> Edition:
    """Check there is something to send and someone to send it to, then create
    the edition and queue its compilation. Commits; nothing is created on error."""
    now = now or utcnow()
    digest = find_digest(session, digest_ref)
    readers = session.scalar(select(func.count()).select_from(Reader).where(eligible_readers(digest)))
    if not readers:
        raise Conflict(f"Digest {digest.name!r} has no confirmed readers to send to.",
                       {"digest": "no confirmed readers"})
    article_ids = [a.id for a in select_articles(session, digest, now)]
    if not article_ids:
        # Nothing new for the digest as a whole; daily and weekly readers may still
        # be owed what came out while they were not due. The edition then carries
        # (and its archive page shows) the newest of those articles.
        owed = planning.due_selections(session, digest, eligible_readers(digest), now)
        if not owed:
            raise Conflict(f"Digest {digest.name!r} has no new articles to send.",
                           {"digest": "no new articles"})
        union = {article_id for selection in owed for article_id in selection}
        newest_first = [a.id for a in planning.article_pool(session, digest, now) if a.id in union]
        article_ids = newest_first[:digest.max_articles]
    edition = Edition(
        digest=digest,
        slot=slot or f"manual-{uuid.uuid4().hex}",
        status=EditionStatus.DRAFT if digest.approval == "draft" and slot else
        EditionStatus.COMPILING,
        article_ids=article_ids,
        created_by=created_by,
        created_at=now,
    )
    session.add(edition)
    session.flush()
    if edition.status == EditionStatus.COMPILING:
        enqueue_on_commit(session, TaskName.PREPARE_EDITION, edition.id)
    session.commit()
    return edition


def fail_edition(session: DbSession, edition_id: int, error: str) -> None:
    session.rollback()
    session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == EditionStatus.COMPILING)
        .values(status=EditionStatus.FAILED, error=error[:2000])
    )
    session.commit()


def get_edition(session: DbSession, edition_id: int) -> Edition:
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise NotFound(f"No edition {edition_id}.")
    return edition


def _transition(session: DbSession, edition_id: int, from_: tuple[str, ...], to: str) -> bool:
    result = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status.in_(from_))
        .values(status=to, last_activity_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def pause_edition(session: DbSession, edition_id: int) -> Edition:
    edition = get_edition(session, edition_id)
    if not _transition(session, edition_id, (EditionStatus.SENDING,), EditionStatus.PAUSED):
        raise Conflict(f"Edition {edition_id} is {edition.status}; only a sending edition pauses.")
    session.commit()
    session.refresh(edition)
    return edition


def resume_edition(session: DbSession, settings: Settings, edition_id: int) -> Edition:
    edition = get_edition(session, edition_id)
    if not _transition(session, edition_id, (EditionStatus.PAUSED,), EditionStatus.SENDING):
        raise Conflict(f"Edition {edition_id} is {edition.status}; only a paused edition resumes.")
    # A fresh start for the circuit breaker: its failure window and relay clock.
    session.execute(
        update(Edition).where(Edition.id == edition_id)
        .values(paused_reason="", relay_unreachable_since=None, resume_at=None,
                breaker_reset_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    start_lanes_on_commit(session, edition_id, settings.send_lanes)
    session.commit()
    session.refresh(edition)
    return edition


def approve_edition(session: DbSession, edition_id: int) -> Edition:
    edition = get_edition(session, edition_id)
    if not _transition(session, edition_id, (EditionStatus.DRAFT,), EditionStatus.COMPILING):
        raise Conflict(f"Edition {edition_id} is {edition.status}; only a draft is approved.")
    enqueue_on_commit(session, TaskName.PREPARE_EDITION, edition_id)
    session.commit()
    session.refresh(edition)
    return edition


def cancel_edition(session: DbSession, edition_id: int) -> Edition:
    """Stop for good: what is not yet in an SMTP transaction will not be sent."""
    edition = get_edition(session, edition_id)
    open_states = (*EditionStatus.OPEN, EditionStatus.DRAFT)
    if not _transition(session, edition_id, open_states, EditionStatus.CANCELLED):
        raise Conflict(f"Edition {edition_id} is {edition.status}; it cannot be cancelled.")
    session.execute(
        update(Delivery)
        .where(
            Delivery.edition_id == edition_id,
            Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRY,
                                 DeliveryStatus.CLAIMED]),
        )
        .values(status=DeliveryStatus.CANCELLED, claimed_by="")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Edition).where(Edition.id == edition_id).values(finished_at=utcnow())
    )
    session.commit()
    session.refresh(edition)
    return edition
