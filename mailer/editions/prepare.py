"""Prepare an edition: compile its variants, plan the ledger in one statement, start the lanes."""

from __future__ import annotations

import logging
import time

from sqlalchemy import func, select

from mailer.config import Settings
from mailer.editions import abtest, planning, tracking, zones
from mailer.editions.compile import SelectionCompiler, add_variant, web_variant
from mailer.editions.selection import edition_segment, eligible_readers
from mailer.jobs import start_lanes_on_commit
from mailer.models import (
    Delivery,
    Edition,
    EditionStatus,
    EditionVariant,
    utcnow,
)
from mailer.models.base import DbSession
from mailer.readers.events import emit_event

log = logging.getLogger(__name__)

def prepare_edition(session: DbSession, settings: Settings, edition_id: int) -> int:
    """Choose each reader's articles, compile MJML once for the edition (each
    distinct selection is assembled from its cards into one EditionVariant), and
    plan the delivery rows with one INSERT ... SELECT (see services/planning.py).
    Returns the number planned. Idempotent: only a `compiling` edition is prepared;
    the row lock (PostgreSQL) makes a second, concurrent run wait and then see it done."""
    session.execute(select(Edition.id).where(Edition.id == edition_id).with_for_update())
    edition = session.get(Edition, edition_id, populate_existing=True)
    if edition is None or edition.status != EditionStatus.COMPILING:
        return 0
    digest = edition.digest
    now = utcnow()
    cutoff = edition.created_at
    clock = _StageClock()
    pool = planning.article_pool(session, digest, cutoff)
    dropped = set(edition.dropped_ids or ())
    if dropped:  # stories an editor took out of the draft reach no reader
        pool = [a for a in pool if a.id not in dropped]
    recent = planning.editions_in_lookback(session, digest, edition.id, cutoff)
    eligible = eligible_readers(digest, edition_segment(session, edition))
    rows = planning.per_reader_rows(session, digest, edition.id, eligible, pool, recent, cutoff)
    planning.materialize(session, rows)
    clock.lap("readers")
    groups = planning.reader_groups(session)

    # Each reader's stories follow the edition's order (an editor may have pinned or
    # moved them in the draft; else newest first); stories not in it follow, newest first.
    rank = {article_id: n for n, article_id in enumerate(edition.article_ids or ())}
    pool_rank = {a.id: len(rank) + n for n, a in enumerate(pool)}

    def editorial(chosen: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(chosen, key=lambda a: rank.get(a, pool_rank.get(a, 0))))

    chosen_by_group = [
        (group, editorial(planning.choose(group, pool, recent, cutoff - planning.LOOKBACK,
                                          digest.max_articles)))
        for group in groups
    ]
    # The public web version (archive) is the edition's own selection.
    web = tuple(edition.article_ids or ())
    selections = {chosen for _, chosen in chosen_by_group if chosen}
    if web:
        selections.add(web)
    union = sorted({a for s in selections for a in s},
                   key=lambda a: rank.get(a, pool_rank.get(a, len(pool_rank) + len(rank))))
    compiler = SelectionCompiler(session, settings, edition, union)
    clock.lap("groups")
    variants = {chosen: add_variant(session, edition, chosen, compiler.compile(chosen)).id
                for chosen in sorted(selections)}
    if settings.tracking:  # opt-in (MAILER_TRACKING): tracked links and an open pixel
        tracking.track_variants(session, edition.id, settings.base_url)
    clock.lap("variants")
    # Readers whose selection is empty get no variant: no row, no email.
    assignments = [(group, variants[chosen]) for group, chosen in chosen_by_group if chosen]
    hold = zones.zone_table(session, edition)  # reader-local: rows wait for their hour
    planning.insert_deliveries(session, edition.id, assignments, now, abtest.planning_columns(
        session, edition.id, planning.plan_readers.c.reader_id), waiting_until=hold)
    planning.drop_scratch(session)
    zones.drop_zone_table(session)
    clock.lap("deliveries")

    # rowcount of INSERT ... SELECT is not reliable on every driver: count instead.
    planned = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition.id)
    ) or 0
    edition.planned = planned
    edition.subject = (web_variant(session, edition) or EditionVariant(subject="")).subject
    edition.started_at = now
    edition.last_activity_at = now
    edition.status = EditionStatus.SENDING if planned else EditionStatus.DONE
    if not planned:
        edition.finished_at = now
    digest.last_run_at = now
    if planned:
        abtest.start_clock(session, edition.id, now)
        if hold is None:  # reader-local rows wait: the tick wakes lanes as zones come due
            start_lanes_on_commit(session, edition.id, settings.send_lanes)
        emit_event(session, "edition.started", {"edition": {
            "id": edition.id, "digest": digest.name, "subject": edition.subject,
            "planned": planned}}, now)
    session.commit()
    clock.lap("commit")
    log.info("edition %s planned %s readers in %s groups, %s variants, %s MJML compile(s): %s",
             edition_id, planned, len(groups), len(variants), compiler.mjml_compiles, clock)
    return planned


class _StageClock:
    """Seconds per planning stage, for the log line operators read."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: list[str] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append(f"{name} {now - self.last:.3f}s")
        self.last = now

    def __str__(self) -> str:
        return ", ".join(self.laps) + f" (total {self.last - self.start:.3f}s)"
