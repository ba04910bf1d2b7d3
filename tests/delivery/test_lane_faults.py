"""The lane under faults: a relay that refuses connections, a misconfigured relay,
a storm of permanent failures (circuit breaker), dead lanes and lost database
connections. SQLite and PostgreSQL (the lock-based parts: PostgreSQL only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import select, update

from mailer import editions
from mailer.delivery.ledger import (
    LANE_LOCK_SPACE,
    claim_batch,
    lane_lock_key,
    release_dead_lanes,
)
from mailer.delivery.sweeper import sweep
from mailer.mail.senders import Outcome, Result
from mailer.models import Delivery, DeliveryStatus, Edition, EditionStatus, utcnow
from tests.delivery.conftest import lane, planned_edition

RELAY_DOWN = Outcome(Result.RELAY, 0, "relay unreachable: [Errno 111] Connection refused",
                     "connect")


def rows(session: Any, edition_id: int) -> list[tuple[str, int]]:
    session.rollback()
    return [tuple(r) for r in session.execute(
        select(Delivery.status, Delivery.attempts).where(Delivery.edition_id == edition_id))]


def test_relay_down_sends_rows_back_without_spending_attempts_then_resumes(
        session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=6)
    sender.relay_down = RELAY_DOWN
    waits: list[float] = []
    seen: dict[str, Any] = {}

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:  # the relay comes back during the third wait
            session.rollback()
            seen["progress"] = editions.progress(session, edition.id)
            seen["rows"] = rows(session, edition.id)
            sender.relay_down = None

    report = lane(session, rt, sender, edition.id, sleep=sleep)
    assert waits[:3] == [0.5, 1.0, 2.0]  # the capped back-off
    assert seen["rows"] == [("pending", 0)] * 6  # back to pending, no attempt spent
    assert seen["progress"]["relay_status"].startswith("relay unreachable since ")
    assert seen["progress"]["relay_unreachable_since"]
    assert report.sent == 6 and len(sender.messages) == 6
    assert rows(session, edition.id) == [("sent", 1)] * 6
    after = editions.progress(session, edition.id)
    assert after["relay_unreachable_since"] is None and after["status"] == "done"


def test_relay_down_too_long_pauses_with_the_reason_and_resume_continues(
        session, rt, sender, dispatch, settings_override):
    settings_override(relay_down_pause_seconds=0.0)
    edition = planned_edition(session, rt, readers=4)
    sender.relay_down = RELAY_DOWN
    report = lane(session, rt, sender, edition.id, sleep=lambda s: None)
    assert report.stopped == "paused: relay unreachable"
    p = editions.progress(session, edition.id)
    assert p["status"] == "paused"
    assert p["paused_reason"].startswith("no relay reachable since ")
    assert "Connection refused" in p["paused_reason"]
    assert rows(session, edition.id) == [("pending", 0)] * 4
    sender.relay_down = None
    editions.resume_edition(session, rt.settings, edition.id)
    p = editions.progress(session, edition.id)
    assert p["paused_reason"] == "" and p["relay_unreachable_since"] is None
    lane(session, rt, sender, edition.id)
    assert rows(session, edition.id) == [("sent", 1)] * 4


def test_misconfigured_relay_pauses_at_once_instead_of_burning_retries(
        session, rt, sender, dispatch):
    edition = planned_edition(session, rt, readers=5)
    sender.relay_down = Outcome(Result.MISCONFIGURED, 535,
                                "relay refused the credentials: 5.7.8 invalid", "connect")
    report = lane(session, rt, sender, edition.id, sleep=lambda s: None)
    assert report.stopped == "paused: relay misconfigured"
    p = editions.progress(session, edition.id)
    assert p["status"] == "paused" and "535" not in p["paused_reason"]
    assert p["paused_reason"].startswith("relay misconfigured: relay refused the credentials")
    assert rows(session, edition.id) == [("pending", 0)] * 5


def test_breaker_pauses_on_permanent_failures_and_resume_starts_a_fresh_window(
        session, rt, sender, dispatch, settings_override):
    settings_override(breaker_min_attempts=10, breaker_window=20, breaker_failure_rate=0.2)
    edition = planned_edition(session, rt, readers=30)
    emails = sorted(session.scalars(
        select(Delivery.reader_id).where(Delivery.edition_id == edition.id)))
    from mailer.models import Reader

    addresses = [session.get(Reader, r).email for r in emails]
    for address in addresses[:10]:
        sender.script[address] = Outcome(Result.PERMANENT, 550, "no such user", "envelope")
    report = lane(session, rt, sender, edition.id)
    assert report.stopped.startswith("paused: ")
    p = editions.progress(session, edition.id)
    assert p["status"] == "paused"
    assert "failed permanently" in p["paused_reason"]
    assert p["failed"] + p["sent"] < 30  # it stopped before the end
    sender.script.clear()
    editions.resume_edition(session, rt.settings, edition.id)
    lane(session, rt, sender, edition.id)
    p = editions.progress(session, edition.id)
    assert p["status"] == "done" and p["sent"] + p["failed"] == 30


def _postgres(session: Any) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("advisory locks and backend termination are PostgreSQL's")


def _admin(session: Any) -> psycopg.Connection:
    url = session.get_bind().url
    return psycopg.connect(host=url.host, port=url.port, user=url.username,
                           dbname=url.database, autocommit=True)


def test_dead_lane_is_found_by_its_free_lock_and_a_live_one_is_left_alone(
        session, rt, sender, dispatch, settings_override):
    _postgres(session)
    edition = planned_edition(session, rt, readers=6)
    old = utcnow() - timedelta(seconds=30)
    claim_batch(session, edition.id, "ghost:1:dead", 2, old)
    claim_batch(session, edition.id, "alive:2:live", 2, old)
    session.execute(update(Delivery).where(Delivery.claimed_by == "ghost:1:dead")
                    .where(Delivery.id == select(Delivery.id).where(
                        Delivery.claimed_by == "ghost:1:dead").limit(1).scalar_subquery())
                    .values(status=DeliveryStatus.SENDING))
    session.commit()
    with _admin(session) as holder:  # the live lane's connection holds its lock
        holder.execute("SELECT pg_advisory_lock(%s, %s)",
                       (LANE_LOCK_SPACE, lane_lock_key("alive:2:live")))
        report = sweep(session, rt.settings)  # long before the 120 s lease
        assert (report.unknown, report.released) == (1, 1)
        assert edition.id in report.woken  # no quiet period for a dead lane's edition
        counts = editions.status_counts(session, edition.id)
        assert counts == {"pending": 3, "unknown": 1, "claimed": 2}
    # Its connection closed: now the "live" lane is dead too.
    dead = release_dead_lanes(session, edition.id, rt.settings.dead_lane_grace_seconds)
    assert dead.released == 2 and dead.workers == ["alive:2:live"]


def test_a_lock_free_lane_that_just_wrote_gets_a_grace_period(session, rt, sender, dispatch):
    _postgres(session)
    edition = planned_edition(session, rt, readers=3)
    claim_batch(session, edition.id, "reconnecting:1:x", 3, utcnow())
    session.commit()
    dead = release_dead_lanes(session, edition.id, grace_seconds=5)
    assert (dead.released, dead.suspects) == (0, 1)


class TerminatingSender:
    """Delivers into a MemorySender; before message N it terminates every
    connection of this database (as `pg_terminate_backend` by an operator would)."""

    def __init__(self, inner: Any, session: Any, at: tuple[int, ...]) -> None:
        self.inner, self.session, self.at, self.calls = inner, session, at, 0

    def send(self, *args: Any, **kw: Any) -> Outcome:
        self.calls += 1
        if self.calls in self.at:
            with _admin(self.session) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return self.inner.send(*args, **kw)

    def probe(self) -> Outcome | None:
        return None

    def close(self) -> None:
        pass


def test_lane_rides_out_terminated_database_connections(session, rt, sender, dispatch):
    _postgres(session)
    edition = planned_edition(session, rt, readers=40)
    terminating = TerminatingSender(sender, session, at=(3, 17, 30))
    report = lane(session, rt, terminating, edition.id)
    got = sorted(rcpt for _, rcpt, _ in sender.messages)
    assert len(got) == len(set(got))  # nobody twice
    counts = editions.status_counts(session, edition.id)
    assert counts.get("sent", 0) == len(got)
    assert counts.get("sent", 0) + counts.get("unknown", 0) == 40, (counts, report)
    session.rollback()
    assert session.scalar(select(Edition.status).where(Edition.id == edition.id)) == \
        EditionStatus.DONE


def test_sweeper_counts_live_lanes_by_their_locks(session, rt, sender, dispatch):
    _postgres(session)
    from mailer.delivery.ledger import EDITION_LANES_SPACE, live_lanes

    edition = planned_edition(session, rt, readers=3)
    session.execute(update(Edition).where(Edition.id == edition.id)
                    .values(last_activity_at=utcnow()))
    session.commit()
    with _admin(session) as lane_conn:  # one live lane of this edition
        lane_conn.execute("SELECT pg_advisory_lock_shared(%s, %s)",
                          (EDITION_LANES_SPACE, edition.id))
        assert live_lanes(session, edition.id) == 1
        dispatch.sent.clear()
        assert edition.id not in sweep(session, rt.settings).woken  # it is being sent
    assert live_lanes(session, edition.id) == 0
    dispatch.sent.clear()
    report = sweep(session, rt.settings)  # rows due, no lane alive: lanes queued at once
    assert edition.id in report.woken
    assert dispatch.names().count("mailer.send_lane") == rt.settings.send_lanes
    dispatch.sent.clear()
    assert edition.id not in sweep(session, rt.settings).woken  # not again right away


def test_a_running_lane_takes_over_a_dead_lanes_rows_and_replaces_it(
        session, rt, sender, dispatch):
    _postgres(session)
    edition = planned_edition(session, rt, readers=8)
    claim_batch(session, edition.id, "ghost:9:dead", 3, utcnow() - timedelta(seconds=30))
    session.commit()
    dispatch.sent.clear()
    lane(session, rt, sender, edition.id)
    counts = editions.status_counts(session, edition.id)
    assert counts == {"sent": 8}  # nothing waited for the 120 s lease
    assert len(sender.messages) == 8
    assert "mailer.send_lane" in dispatch.names()  # a replacement for the dead lane
