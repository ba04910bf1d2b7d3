"""Start an edition and move it through its states (pause, resume, approve, cancel)."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from mailer.common.errors import Conflict, NotFound, ValidationError
from mailer.common.validation import clean_text
from mailer.config import Settings
from mailer.content.digests import find_digest
from mailer.editions import planning
from mailer.editions.abtest import SubjectTestSpec, add_subject_test
from mailer.editions.selection import eligible_readers, find_audience, select_articles
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


@dataclass(frozen=True)
class SendPlan:
    """What "send now" would do, computed without writing anything."""

    digest_id: int
    digest_name: str
    readers: int  # readers who would get an email
    confirmed: int  # confirmed, unpaused readers of the digest's topics
    article_ids: list[int]  # the edition's own selection (what the archive shows)
    selections: int  # distinct article selections (compiles)
    reason: str = ""  # why nobody would get anything

    def json(self) -> dict[str, object]:
        return {"digest": self.digest_name, "digest_id": self.digest_id, "readers": self.readers,
                "confirmed_readers": self.confirmed, "articles": len(self.article_ids),
                "selections": self.selections, "reason": self.reason}


def plan_send(session: DbSession, digest_ref: object, now: datetime | None = None, *,
              segment_id: object = None) -> SendPlan:
    """A dry run of starting an edition now: how many readers it would reach
    (narrowed to one audience with `segment_id`)."""
    now = now or utcnow()
    digest = find_digest(session, digest_ref)
    segment = find_audience(session, segment_id)
    plan = functools.partial(SendPlan, digest.id, digest.name)
    if digest.archived_at is not None:
        return plan(0, 0, [], 0, "the digest is archived")
    eligible = eligible_readers(digest, segment)
    confirmed = session.scalar(select(func.count()).select_from(Reader).where(eligible)) or 0
    if not confirmed:
        return plan(0, 0, [], 0, "no confirmed readers")
    article_ids = [a.id for a in select_articles(session, digest, now)]
    if not article_ids:
        # Nothing new for the digest as a whole; daily and weekly readers may still
        # be owed what came out while they were not due. The edition then carries
        # (and its archive page shows) the newest of those articles.
        owed = planning.due_selections(session, digest, eligible, now)
        if not owed:
            return plan(0, confirmed, [], 0, "no new articles")
        union = {article_id for selection in owed for article_id in selection}
        newest_first = [a.id for a in planning.article_pool(session, digest, now) if a.id in union]
        article_ids = newest_first[:digest.max_articles]
    readers, selections = planning.reach(session, digest, eligible, now)
    if not readers:
        return plan(0, confirmed, article_ids, 0, "no reader is owed any of these articles")
    return plan(readers, confirmed, article_ids, selections)


def start_edition(
    session: DbSession,
    digest_ref: object,
    *,
    created_by: str = "",
    slot: str | None = None,
    now: datetime | None = None,
    segment_id: object = None,
    subject_test: SubjectTestSpec | None = None,
    local_send: str = "",
) -> Edition:
    """Check there is something to send and someone to send it to, then create
    the edition and queue its compilation. Commits; nothing is created when the
    edition would reach nobody (Conflict). `segment_id` narrows this edition to
    an audience; `subject_test` (see `check_subject_test`) makes it an A/B test;
    `local_send` ("2026-03-08T07:00"): each reader gets it at that wall-clock time
    in their own zone."""
    now = now or utcnow()
    plan = plan_send(session, digest_ref, now, segment_id=segment_id)
    if not plan.readers:
        raise Conflict(f"Digest {plan.digest_name!r}: nothing to send ({plan.reason}).",
                       {"digest": plan.reason})
    digest = find_digest(session, plan.digest_id)
    segment = find_audience(session, segment_id)
    edition = Edition(
        digest=digest,
        slot=slot or f"manual-{uuid.uuid4().hex}",
        status=EditionStatus.DRAFT if digest.approval == "draft" and slot else
        EditionStatus.COMPILING,
        article_ids=plan.article_ids,
        created_by=created_by,
        created_at=now,
        segment_id=segment.id if segment is not None else None,
        local_send=local_send,
    )
    session.add(edition)
    session.flush()
    if subject_test is not None:
        add_subject_test(session, edition.id, subject_test)
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
            Delivery.status.in_([DeliveryStatus.WAITING, DeliveryStatus.PENDING,
                                 DeliveryStatus.RETRY, DeliveryStatus.CLAIMED,
                                 DeliveryStatus.HELD]),
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


CURATE_ACTIONS = ("pin", "up", "down", "drop", "restore")


def curate_draft(session: DbSession, edition_id: int, action: str, article_id: object) -> Edition:
    """Change a draft's stories before it is approved: `pin` makes a story the lead,
    `up`/`down` move it, `drop` takes it out (no reader gets it from this edition),
    `restore` puts a dropped story back at the end. Commits."""
    if action not in CURATE_ACTIONS:
        raise ValidationError(f"action must be one of {', '.join(CURATE_ACTIONS)}.",
                              {"action": "unknown action"})
    if isinstance(article_id, bool) or not (
            isinstance(article_id, int) or (isinstance(article_id, str) and article_id.isdigit())):
        raise ValidationError("article must be an article id.", {"article": "not an id"})
    article = int(article_id)
    session.execute(select(Edition.id).where(Edition.id == edition_id).with_for_update())
    edition = get_edition(session, edition_id)
    session.refresh(edition)
    if edition.status != EditionStatus.DRAFT:
        raise Conflict(f"Edition {edition_id} is {edition.status}; only a draft's stories change.")
    order = list(edition.article_ids or [])
    dropped = list(edition.dropped_ids or [])
    if action == "restore":
        if article not in dropped:
            raise ValidationError(f"Story {article} was not dropped.", {"article": "not dropped"})
        dropped.remove(article)
        order.append(article)
    else:
        if article not in order:
            raise ValidationError(f"Story {article} is not in this draft.", {"article": "not in draft"})
        index = order.index(article)
        if action == "drop":
            if len(order) == 1:
                raise Conflict("A draft keeps at least one story; cancel it instead.",
                               {"article": "last story"})
            order.pop(index)
            dropped.append(article)
        elif action == "pin":
            order.insert(0, order.pop(index))
        else:
            target = max(0, min(len(order) - 1, index + (-1 if action == "up" else 1)))
            order[index], order[target] = order[target], order[index]
    edition.article_ids = order
    edition.dropped_ids = dropped
    session.commit()
    return edition


def set_edition_subject(session: DbSession, edition_id: int, subject: object) -> Edition:
    """An editor's subject for one draft (blank: the digest's, else the template's). Commits."""
    edition = get_edition(session, edition_id)
    if edition.status != EditionStatus.DRAFT:
        raise Conflict(f"Edition {edition_id} is {edition.status}; only a draft's subject changes.")
    edition.subject = clean_text(subject, "subject", 150)
    session.commit()
    return edition
