"""A lane sends groups of messages over several connections to one real SMTP
server (aiosmtpd offering PIPELINING): each group's rows are marked `sending` in
one statement before any body goes out, every reader gets one copy."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import event, select

from mailer.delivery import lane as lane_module
from mailer.delivery import ledger as ledger_module
from mailer.mail.senders import make_sender
from mailer.models import Delivery, DeliveryStatus, Edition, EditionStatus, Reader
from tests.delivery.conftest import lane, planned_edition
from tests.support.smtp import SmtpServer


def test_groups_are_marked_sending_in_one_statement_before_their_bodies(
        session, rt, dispatch, settings_override, tmp_path, monkeypatch):
    settings_override(lane_connections=8)
    edition = planned_edition(session, rt, readers=40)
    groups: list[tuple[list[int], int]] = []
    with SmtpServer() as server:
        original = ledger_module.LedgerWriter.mark_sending_group

        def spy(self: Any, ids: list[int]) -> set[int]:
            groups.append((list(ids), len(server.handler.messages)))
            return original(self, ids)

        monkeypatch.setattr(ledger_module.LedgerWriter, "mark_sending_group", spy)
        statements: list[str] = []
        engine = session.get_bind()
        listener = lambda *a: statements.append(a[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        sender = make_sender(server.url, tmp_path)
        try:
            report = lane(session, rt, sender, edition.id)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
            sender.close()
        received = Counter(m.rcpt for m in server.handler.messages)
    assert report.sent == 40
    # Five groups of eight; none had a body delivered before its write.
    assert [len(ids) for ids, _ in groups] == [8] * 5
    assert [before for _, before in groups] == [0, 8, 16, 24, 32]
    emails = set(session.scalars(select(Reader.email)))
    assert set(received) == emails and set(received.values()) == {1}
    statuses = set(session.scalars(select(Delivery.status).where(
        Delivery.edition_id == edition.id)))
    assert statuses == {DeliveryStatus.SENT}
    # ORM ledger writes (SQLite; PostgreSQL writes through its raw connection):
    # one per group plus claims, the last flush and the release, never one per message.
    writes = [s for s in statements if s.startswith("UPDATE deliveries")]
    assert len(writes) <= 5 + 8


def test_a_pause_during_a_chunk_stops_the_lane_within_the_chunk(
        session, rt, dispatch, settings_override, tmp_path, monkeypatch):
    """A chunk can take long (rate limits): the lane re-reads its edition's status about
    once a second, so a pause stops it there and its unsent claims go back to pending."""
    settings_override(lane_connections=4, batch_size=40)
    edition = planned_edition(session, rt, readers=40)
    ticks = iter(range(1_000_000))
    with SmtpServer() as server:
        original = ledger_module.LedgerWriter.mark_sending_group
        groups: list[int] = []

        def pause_after_first(self: Any, ids: list[int]) -> set[int]:
            groups.append(len(ids))
            if len(groups) == 1:  # an editor presses Pause while the first group goes out
                session.execute(Edition.__table__.update().where(Edition.id == edition.id)
                                .values(status=EditionStatus.PAUSED))
                session.commit()
            return original(self, ids)

        monkeypatch.setattr(ledger_module.LedgerWriter, "mark_sending_group", pause_after_first)
        monkeypatch.setattr(lane_module, "STATUS_CHECK_SECONDS", 0.5)
        sender = make_sender(server.url, tmp_path)
        try:
            report = lane(session, rt, sender, edition.id, clock=lambda: next(ticks) * 1.0)
        finally:
            sender.close()
        delivered = len(server.handler.messages)
    assert report.stopped.startswith("edition is paused")
    assert delivered == 4 == report.sent  # the group under way finished; nothing after it
    counts = Counter(session.scalars(select(Delivery.status).where(Delivery.edition_id == edition.id)))
    assert counts == {DeliveryStatus.SENT: 4, DeliveryStatus.PENDING: 36}

