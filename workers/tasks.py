"""Thin tasks: load by id, call one service, classify the error.

Every task is idempotent; the ledger in the database decides what is left to do,
so a task run twice (broker re-delivery) or never (broker lost it; the sweeper
re-enqueues) does no harm.
"""

from __future__ import annotations

import logging

from celery import shared_task

from mailer.extensions import db
from mailer.runtime import runtime
from mailer.services import delivery, editions, transactional
from mailer.services.rendering import TemplateError

log = logging.getLogger(__name__)


@shared_task(name="mailer.send_confirmation", ignore_result=True)
def send_confirmation(reader_id: int) -> str:
    rt = runtime()
    outcome = transactional.send_confirmation(
        db.session, rt.settings, rt.tokens, rt.sender(), reader_id
    )
    if outcome is None:
        return "nothing to confirm"
    if not outcome.sent:
        log.warning("confirmation to reader %s: %s %s", reader_id, outcome.code, outcome.message)
    return outcome.result


@shared_task(name="mailer.prepare_edition", ignore_result=True)
def prepare_edition(edition_id: int) -> int:
    try:
        return editions.prepare_edition(db.session, runtime().settings, edition_id)
    except TemplateError as exc:
        # Not retryable: an editor must fix the template. Shown on the edition.
        editions.fail_edition(db.session, edition_id, str(exc))
        return 0


@shared_task(name="mailer.send_lane", ignore_result=True)
def send_lane(edition_id: int) -> dict[str, int | str]:
    rt = runtime()
    report = delivery.run_lane(
        db.session,
        edition_id,
        settings=rt.settings,
        sender=rt.sender(),
        tokens=rt.tokens,
        skeletons=rt.skeletons(),
        limiter=rt.limiter(),
    )
    return {"sent": report.sent, "claimed": report.claimed, "stopped": report.stopped}


@shared_task(name="mailer.poll_feed", ignore_result=True)
def poll_feed(feed_id: int) -> int:
    from mailer.services import feeds

    result = feeds.poll_feed(db.session, feed_id)
    return result.imported if result else -1


@shared_task(name="mailer.tick", ignore_result=True)
def tick() -> dict[str, object]:
    """Every few seconds from beat: repair the ledger, start due digests and feeds."""
    from mailer.services import feeds, scheduler

    report = delivery.sweep(db.session, runtime().settings)
    started = scheduler.run_due(db.session, runtime().settings)
    polled = feeds.queue_due_feeds(db.session)
    return {"woken": report.woken, "unknown": report.unknown, "started": started, "feeds": polled}
