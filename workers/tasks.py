"""Thin tasks: load by id, call one service, classify the error.

Every task is idempotent; the ledger in the database decides what is left to do,
so a task run twice (broker re-delivery) or never (broker lost it; the sweeper
re-enqueues) does no harm.
"""

from __future__ import annotations

import logging
from functools import partial

from celery import shared_task
from flask import current_app

from mailer.extensions import db
from mailer.runtime import runtime
from mailer.delivery import lane as delivery
from mailer.editions import control as editions
from mailer.readers import confirmations as transactional
from mailer.mail.rendering import TemplateError
from mailer.jobs import CONFIRMATIONS_TASK, rearm_wake

log = logging.getLogger(__name__)


@shared_task(name=CONFIRMATIONS_TASK, ignore_result=True)
def send_confirmations() -> dict[str, int]:
    """Woken by signups (coalesced) and by the tick: sends what the rows say is due."""
    rt = runtime()
    report = transactional.send_due_confirmations(
        db.session, rt.settings, rt.tokens, rt.sender(),
        rearm=partial(rearm_wake, CONFIRMATIONS_TASK),
    )
    if report.not_sent:
        log.warning("%s confirmation email(s) not sent this round", report.not_sent)
    if report.more:  # the time budget ran out: hand over to a fresh task
        current_app.extensions["dispatch"].wake(CONFIRMATIONS_TASK)
    return {"sent": report.sent, "not_sent": report.not_sent}


@shared_task(name="mailer.send_email_change", ignore_result=True)
def send_email_change(reader_id: int) -> str:
    rt = runtime()
    outcome = transactional.send_email_change(
        db.session, rt.settings, rt.tokens, rt.sender(), reader_id
    )
    if outcome is None:
        return "no change waiting"
    if not outcome.sent:
        log.warning("address change to reader %s: %s %s", reader_id, outcome.code, outcome.message)
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
    from mailer.content import feeds

    result = feeds.poll_feed(db.session, feed_id)
    return result.imported if result else -1


@shared_task(name="mailer.tick", ignore_result=True)
def tick() -> dict[str, object]:
    """Every few seconds from beat: repair the ledger, start due digests and feeds."""
    from mailer.content import feeds
    from mailer.editions import due as scheduler

    report = delivery.sweep(db.session, runtime().settings)
    started = scheduler.run_due(db.session, runtime().settings)
    polled = feeds.queue_due_feeds(db.session)
    # Confirmations whose wake-up was lost (broker outage, dead worker).
    waiting = transactional.confirmations_due(db.session, older_than=30, limit=1)
    if waiting:
        current_app.extensions["dispatch"].wake(CONFIRMATIONS_TASK)
    return {"woken": report.woken, "unknown": report.unknown, "started": started, "feeds": polled,
            "confirmations_waiting": bool(waiting)}
