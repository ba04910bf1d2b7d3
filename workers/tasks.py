"""Thin tasks: load by id, call one service, classify the error.

Every task is idempotent; the ledger in the database decides what is left to do,
so a task run twice (broker re-delivery) or never (broker lost it; the sweeper
re-enqueues) does no harm. Task names come from `mailer.jobs.TaskName`.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

from celery import Task, shared_task
from flask import current_app
from sqlalchemy.exc import OperationalError

from mailer import automations, broker_fs, console, content, delivery, editions, readers, webhooks
from mailer.extensions import db
from mailer.jobs import TaskName, rearm_wake
from mailer.mail import TemplateError
from mailer.models import utcnow
from mailer.runtime import runtime
from workers import shutdown

log = logging.getLogger(__name__)


@shared_task(name=TaskName.SEND_CONFIRMATIONS, ignore_result=True)
def send_confirmations() -> dict[str, int]:
    """Woken by signups (coalesced) and by the tick: sends what the rows say is due."""
    rt = runtime()
    dispatch = current_app.extensions["dispatch"]
    exclusive = (broker_fs.single_runner(rt.settings.instance_path, TaskName.SEND_CONFIRMATIONS)
                 if rt.settings.uses_embedded_broker else contextlib.nullcontext(True))
    with exclusive as mine:
        if not mine:
            # Another drain is at it; it looks for rows once more after it stops.
            return {"sent": 0, "not_sent": 0}
        report = readers.send_due_confirmations(
            db.session, rt.settings, rt.tokens, rt.sender(),
            rearm=partial(rearm_wake, TaskName.SEND_CONFIRMATIONS),
            # Short turns: after a signup flood, a new send queued behind this task
            # waits at most this long for a worker process.
            budget_seconds=10.0,
        )
    if report.not_sent:
        log.warning("%s confirmation email(s) not sent this round", report.not_sent)
    if report.more or (rt.settings.uses_embedded_broker
                       and readers.confirmations_due(db.session, limit=1)):
        # The budget ran out, or rows came in while this drain held the lock (their
        # wake found it taken): hand over to a fresh task. Re-armed first: that
        # earlier wake's mark would otherwise swallow this one.
        dispatch.rearm(TaskName.SEND_CONFIRMATIONS)
        dispatch.wake(TaskName.SEND_CONFIRMATIONS)
    return {"sent": report.sent, "not_sent": report.not_sent}


@shared_task(name=TaskName.SEND_EMAIL_CHANGE, ignore_result=True)
def send_email_change(reader_id: int) -> str:
    rt = runtime()
    outcome = readers.send_email_change(db.session, rt.settings, rt.tokens, rt.sender(), reader_id)
    if outcome is None:
        return "no change waiting"
    if not outcome.sent:
        log.warning("address change to reader %s: %s %s", reader_id, outcome.code, outcome.message)
    return outcome.result


# On SQLite a write that meets another process's fresh commit fails at once with
# "database is locked" (WAL snapshot): compiling is idempotent, so try again soon
# rather than leave a new send to the sweeper's next minute.
@shared_task(name=TaskName.PREPARE_EDITION, ignore_result=True, bind=True, max_retries=10)
def prepare_edition(self: Task, edition_id: int) -> int:
    try:
        return editions.prepare_edition(db.session, runtime().settings, edition_id)
    except OperationalError as exc:
        db.session.rollback()
        raise self.retry(exc=exc, countdown=0.5) from exc
    except TemplateError as exc:
        # Not retryable: an editor must fix the template. Shown on the edition.
        editions.fail_edition(db.session, edition_id, str(exc))
        return 0


@shared_task(name=TaskName.SEND_LANE, ignore_result=True)
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
        should_stop=partial(shutdown.requested, rt.settings.instance_path / "run"),
    )
    return {"sent": report.sent, "claimed": report.claimed, "stopped": report.stopped}


@shared_task(name=TaskName.POLL_FEED, ignore_result=True)
def poll_feed(feed_id: int) -> int:
    result = content.poll_feed(db.session, feed_id,
                               allow_private=runtime().settings.allow_private_urls)
    return result.imported if result else -1


@shared_task(name=TaskName.POLL_BOUNCES, ignore_result=True)
def poll_bounces() -> dict[str, object]:
    """From its own beat entry: read the bounce mailbox (MAILER_BOUNCE_MAILBOX) once."""
    rt = runtime()
    return delivery.poll_bounce_mailbox(db.session, rt.settings, rt.tokens).json()


@shared_task(name=TaskName.TICK, ignore_result=True)
def tick() -> dict[str, object]:
    """Every few seconds from beat: repair the ledger, start due digests and feeds."""
    settings = runtime().settings
    report = delivery.sweep(db.session, settings)
    started = editions.run_due(db.session, settings)
    # A/B subject tests whose wait is over: winner chosen, held readers released.
    decided = editions.decide_subject_tests(db.session, settings)
    polled = content.queue_due_feeds(db.session)
    # Confirmations whose wake-up was lost (broker outage, dead worker).
    waiting = readers.confirmations_due(db.session, older_than=30, limit=1)
    if waiting:
        current_app.extensions["dispatch"].wake(TaskName.SEND_CONFIRMATIONS)
    # "Email me a new link" requests whose task was lost; timed pauses that are over.
    for reader_id in readers.reader_links_due(db.session):
        current_app.extensions["dispatch"](TaskName.SEND_READER_LINK, (reader_id,))
    resumed = readers.resume_due_readers(db.session)
    # Automation emails and webhook calls that are due: nothing waits on a lost wake.
    # Rows a dead worker left claimed go back first (those left sending become unknown).
    automations.repair_stale(db.session, settings.claim_lease_seconds, utcnow())
    # Inactive-reader policy (off unless MAILER_INACTIVE_MONTHS): plans re-engagement
    # emails in the automation ledger and pauses readers past the grace period.
    inactive = automations.scan_inactive_due(db.session, settings)
    if automations.due_count(db.session):
        current_app.extensions["dispatch"].wake(TaskName.SEND_AUTOMATIONS)
    if webhooks.due_count(db.session):
        current_app.extensions["dispatch"].wake(TaskName.SEND_WEBHOOKS)
    webhooks.purge_finished(db.session)
    return {"woken": report.woken, "unknown": report.unknown, "started": started, "feeds": polled,
            "confirmations_waiting": bool(waiting), "resumed": resumed, "ab_decided": decided,
            "inactive": None if inactive is None else {
                "asked": inactive.asked, "paused": inactive.paused, "kept": inactive.kept}}


@shared_task(name=TaskName.SEND_READER_LINK, ignore_result=True)
def send_reader_link(reader_id: int) -> str:
    rt = runtime()
    outcome = readers.send_reader_link(db.session, rt.settings, rt.tokens, rt.sender(), reader_id)
    if outcome is None:
        return "no link request waiting"
    if not outcome.sent:
        log.warning("link email to reader %s: %s %s", reader_id, outcome.code, outcome.message)
    return outcome.result


@shared_task(name=TaskName.SEND_LOGIN_NOTICE, ignore_result=True)
def send_login_notice(throttle_id: int) -> str:
    rt = runtime()
    outcome = console.send_login_notice(db.session, rt.settings, rt.sender(), throttle_id)
    return "no account" if outcome is None else outcome.result



@shared_task(name=TaskName.SEND_AUTOMATIONS, ignore_result=True)
def send_automations() -> dict[str, int]:
    """Woken after a confirmation commits (coalesced) and by the tick."""
    rt = runtime()
    report = automations.send_due_automations(
        db.session, rt.settings, rt.tokens, rt.sender(), dkim=rt.dkim, limiter=rt.limiter(),
        rearm=partial(rearm_wake, TaskName.SEND_AUTOMATIONS),
    )
    if report.more:
        current_app.extensions["dispatch"].wake(TaskName.SEND_AUTOMATIONS)
    return {"sent": report.sent, "failed": report.failed, "retry": report.retry,
            "skipped": report.skipped}


@shared_task(name=TaskName.SEND_WEBHOOKS, ignore_result=True)
def send_webhooks() -> dict[str, int]:
    """Woken after an event commits (coalesced) and by the tick."""
    report = webhooks.deliver_due(
        db.session, allow_private=runtime().settings.allow_private_urls,
        rearm=partial(rearm_wake, TaskName.SEND_WEBHOOKS),
    )
    if report.more:
        current_app.extensions["dispatch"].wake(TaskName.SEND_WEBHOOKS)
    return {"sent": report.sent, "failed": report.failed, "retry": report.retry}
