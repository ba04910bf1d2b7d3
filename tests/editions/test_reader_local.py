"""Reader-local schedules ("daily 07:00 reader-local"): the edition is planned once
and each reader's row waits until 07:00 in the reader's zone. Time is injected
(`now=`), never slept: DST days, :30/:45 offsets, UTC+14 and UTC-11, one email
per reader and local day, and real SMTP delivery zone by zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mailer import delivery, editions
from mailer.common.errors import ValidationError
from mailer.content import digests
from mailer.content.schedules import (
    is_reader_local,
    local_instant,
    local_send_for,
    next_slot,
    parse_schedule,
)
from mailer.delivery.ledger import claim_batch
from mailer.editions import due as scheduler
from mailer.editions.zones import zone_instants
from mailer.mail.senders import SmtpSender, SmtpTarget
from mailer.models import Delivery, Edition, EditionStatus, Reader
from tests.delivery.conftest import lane
from tests.support import factories
from tests.support.smtp import SmtpServer

SCHEDULE = "daily 07:00 reader-local"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the schedule -------------------------------------------------------------

@pytest.mark.parametrize("text, cron", [
    ("daily 07:00 reader-local", "0 7 * * *"),
    ("Weekdays 06:30 Reader-Local", "30 6 * * 1-5"),
    ("mondays 08:15 reader-local", "15 8 * * 1"),
    ("0 7 * * 1-5 reader-local", "0 7 * * 1-5"),
])
def test_reader_local_phrases(text, cron):
    assert is_reader_local(text)
    # The zone returned is the digest's: it serves readers who gave none.
    assert parse_schedule(text, "Europe/London") == (cron, "Europe/London")


@pytest.mark.parametrize("text", ["reader-local", "daily 25:00 reader-local",
                                  "*/15 * * * * reader-local", "0 7,19 * * * reader-local",
                                  "daily 07:00 Europe/Berlin reader-local"])
def test_bad_reader_local_schedules_are_refused(text):
    with pytest.raises(ValidationError) as err:
        parse_schedule(text)
    assert "schedule" in err.value.fields


def test_slot_starts_before_the_earliest_zone_reaches_the_hour():
    slot = next_slot(SCHEDULE, "UTC", utc(2026, 3, 7, 12))
    # 07:00 on 8 March at UTC+14 is 17:00Z on the 7th; planning starts 10 minutes before.
    assert slot == utc(2026, 3, 7, 16, 50)
    assert local_send_for(slot) == "2026-03-08T07:00"
    following = next_slot(SCHEDULE, "UTC", slot)
    assert following == slot + timedelta(days=1)
    assert local_send_for(following) == "2026-03-09T07:00"
    # Weekdays: the local date is a weekday (6 March 2026 is a Friday).
    friday = next_slot("weekdays 07:00 reader-local", "UTC", utc(2026, 3, 5, 12))
    monday = next_slot("weekdays 07:00 reader-local", "UTC", friday)
    assert (local_send_for(friday), local_send_for(monday)) == ("2026-03-06T07:00",
                                                                "2026-03-09T07:00")


# --- DST and odd offsets ---------------------------------------------------------

@pytest.mark.parametrize("zone, local, expected", [
    # New York springs forward at 02:00 on 8 March and falls back at 02:00 on 1 November.
    ("America/New_York", "2026-03-07T07:00", utc(2026, 3, 7, 12)),
    ("America/New_York", "2026-03-08T07:00", utc(2026, 3, 8, 11)),
    ("America/New_York", "2026-03-08T02:30", utc(2026, 3, 8, 7)),  # gap: 03:00 EDT
    ("America/New_York", "2026-10-31T07:00", utc(2026, 10, 31, 11)),
    ("America/New_York", "2026-11-01T07:00", utc(2026, 11, 1, 12)),
    ("America/New_York", "2026-11-01T01:30", utc(2026, 11, 1, 5, 30)),  # twice: first (EDT)
    # London: 29 March 01:00 GMT -> 02:00 BST, 25 October 02:00 BST -> 01:00 GMT.
    ("Europe/London", "2026-03-28T07:00", utc(2026, 3, 28, 7)),
    ("Europe/London", "2026-03-29T07:00", utc(2026, 3, 29, 6)),
    ("Europe/London", "2026-03-29T01:30", utc(2026, 3, 29, 1)),  # gap: 02:00 BST
    ("Europe/London", "2026-10-25T07:00", utc(2026, 10, 25, 7)),
    ("Europe/London", "2026-10-25T01:30", utc(2026, 10, 25, 0, 30)),  # twice: first (BST)
    # Sydney: 5 April 03:00 AEDT -> 02:00 AEST, 4 October 02:00 AEST -> 03:00 AEDT.
    ("Australia/Sydney", "2026-04-04T07:00", utc(2026, 4, 3, 20)),
    ("Australia/Sydney", "2026-04-05T07:00", utc(2026, 4, 4, 21)),
    ("Australia/Sydney", "2026-04-05T02:30", utc(2026, 4, 4, 15, 30)),  # twice: first (AEDT)
    ("Australia/Sydney", "2026-10-04T07:00", utc(2026, 10, 3, 20)),
    ("Australia/Sydney", "2026-10-04T02:30", utc(2026, 10, 3, 16)),  # gap: 03:00 AEDT
    # Half- and quarter-hour offsets, and both ends of the clock.
    ("Asia/Kolkata", "2026-03-08T07:00", utc(2026, 3, 8, 1, 30)),
    ("Asia/Kathmandu", "2026-03-08T07:00", utc(2026, 3, 8, 1, 15)),
    ("Pacific/Kiritimati", "2026-03-08T07:00", utc(2026, 3, 7, 17)),
    ("Pacific/Pago_Pago", "2026-03-08T07:00", utc(2026, 3, 8, 18)),
])
def test_local_instant(zone, local, expected):
    assert local_instant(local, zone) == expected


ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata",
         "Asia/Kathmandu", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/Adak"]


@pytest.mark.parametrize("start", [utc(2026, 3, 5), utc(2026, 3, 26), utc(2026, 4, 2),
                                   utc(2026, 10, 1), utc(2026, 10, 22), utc(2026, 10, 29)])
def test_one_email_per_reader_and_local_day_across_dst(start):
    """Eight daily editions around a DST change: in every zone each local day gets
    exactly one send, at 07:00 local wall time, in order."""
    slot, sends = start, {zone: [] for zone in ZONES}
    for _ in range(8):
        slot = next_slot(SCHEDULE, "UTC", slot)
        for zone, at in zone_instants(local_send_for(slot), ZONES, "UTC").items():
            assert at >= slot  # never due before the edition starts
            sends[zone].append(at.astimezone(ZoneInfo(zone)))
    for zone, local in sends.items():
        days = [t.date() for t in local]
        assert days == [days[0] + timedelta(days=n) for n in range(8)], zone
        assert {(t.hour, t.minute) for t in local} == {(7, 0)}, zone
        assert local == sorted(local)


# --- planning once, sending zone by zone ------------------------------------------

READERS = {
    "kiri@example.org": "Pacific/Kiritimati",
    "kolkata@example.org": "Asia/Kolkata",
    "london@example.org": "Europe/London",
    "nozone@example.org": "",  # the digest's zone (Europe/London)
    "ny@example.org": "America/New_York",
    "pago@example.org": "Pacific/Pago_Pago",
}


def local_world(session):
    t = factories.topic(session)
    for address, zone in READERS.items():
        reader = factories.reader(session, address, topics=[t])
        reader.timezone = zone
    d = factories.digest(session, topics=[t], timezone="Europe/London")
    digests.save_digest(session, {"schedule": SCHEDULE}, d)
    return d, t


def start_day(session, rt, d, t, slot):
    """The tick of `slot`: an edition starts, is prepared, and its rows wait."""
    d.next_run_at = slot
    factories.article(session, topics=[t], published_at=slot - timedelta(hours=1))
    session.commit()
    [edition_id] = scheduler.run_due(session, rt.settings, now=slot + timedelta(seconds=30))
    assert editions.prepare_edition(session, rt.settings, edition_id) == len(READERS)
    return edition_id


def rows(session, edition_id):
    return {email: (status, at) for email, status, at in session.execute(
        select(Reader.email, Delivery.status, Delivery.next_attempt_at)
        .join(Reader, Reader.id == Delivery.reader_id).where(Delivery.edition_id == edition_id))}


def test_planned_once_rows_wait_for_their_zone(session, rt, dispatch):
    d, t = local_world(session)
    slot = utc(2026, 3, 7, 16, 50)
    edition_id = start_day(session, rt, d, t, slot)
    edition = session.get(Edition, edition_id)
    assert edition.local_send == "2026-03-08T07:00" and edition.status == EditionStatus.SENDING
    # Every row waits: preparing queues no lane (the tick wakes them as zones come due).
    assert "mailer.send_lane" not in dispatch.names()
    assert rows(session, edition_id) == {
        "kiri@example.org": ("waiting", utc(2026, 3, 7, 17)),
        "kolkata@example.org": ("waiting", utc(2026, 3, 8, 1, 30)),
        "london@example.org": ("waiting", utc(2026, 3, 8, 7)),
        "nozone@example.org": ("waiting", utc(2026, 3, 8, 7)),
        "ny@example.org": ("waiting", utc(2026, 3, 8, 11)),  # the DST day: EDT already
        "pago@example.org": ("waiting", utc(2026, 3, 8, 18)),
    }
    p = editions.progress(session, edition_id, by_zone=True)
    assert p["waiting"] == 6 and p["remaining"] == 6 and p["eta_seconds"] is None
    assert p["next_zone_at"] == utc(2026, 3, 7, 17).isoformat()
    assert [(z["timezone"], z["waiting"]) for z in p["zones"]] == [
        ("Pacific/Kiritimati", 1), ("Asia/Kolkata", 1), ("Europe/London", 2),
        ("America/New_York", 1), ("Pacific/Pago_Pago", 1)]

    # Before the first zone's hour: nothing due, no lane woken, not finished, not stuck.
    dispatch.sent.clear()
    report = delivery.sweep(session, rt.settings, now=utc(2026, 3, 7, 16, 59, 59))
    assert report.local_released == 0 and report.woken == [] and report.finished == []
    assert "mailer.send_lane" not in dispatch.names()
    assert claim_batch(session, edition_id, "w", 100, utc(2026, 3, 7, 16, 59)) == []
    session.rollback()
    # Kiritimati's 07:00: one row released, the lanes woken.
    report = delivery.sweep(session, rt.settings, now=utc(2026, 3, 7, 17, 0, 5))
    assert report.local_released == 1 and report.woken == [edition_id]
    assert "mailer.send_lane" in dispatch.names()
    assert delivery.sweep(session, rt.settings, now=utc(2026, 3, 7, 17, 0, 15)).local_released == 0
    assert [s for s, _ in rows(session, edition_id).values()].count("pending") == 1
    # Cancelling stops the rows still waiting too.
    editions.cancel_edition(session, edition_id)
    assert {s for s, _ in rows(session, edition_id).values()} == {"cancelled"}


def test_invalid_stored_zone_falls_back_to_the_digest_zone():
    at = zone_instants("2026-03-08T07:00", ["Mars/Olympus", "", "Asia/Kolkata"], "Europe/London")
    assert at == {"Mars/Olympus": utc(2026, 3, 8, 7), "": utc(2026, 3, 8, 7),
                  "Asia/Kolkata": utc(2026, 3, 8, 1, 30)}


def test_two_days_through_real_smtp_zone_by_zone(session, rt, dispatch):
    """Readers in six zones, two daily editions across New York's DST change,
    delivered by a real SMTP server: each copy arrives only once its hour has come
    (ticks at injected times, a second before and a few seconds after each zone's
    hour), exactly one per reader and local day, none skipped."""
    d, t = local_world(session)
    slots = [utc(2026, 3, 7, 16, 50), utc(2026, 3, 8, 16, 50)]
    hours = {local_instant(f"2026-03-{day}T07:00", zone or "Europe/London")
             for day in ("08", "09") for zone in READERS.values()}
    checkpoints = sorted({h + timedelta(seconds=s) for h in hours for s in (-1, 3)}
                         | {slot + timedelta(seconds=40) for slot in slots})
    got: dict[str, list[datetime]] = {address: [] for address in READERS}
    ids: list[int] = []
    with SmtpServer() as smtp:
        sender = SmtpSender(SmtpTarget.from_url(smtp.url))
        try:
            for moment in checkpoints:
                if len(ids) < len(slots) and moment >= slots[len(ids)]:
                    ids.append(start_day(session, rt, d, t, slots[len(ids)]))
                before = len(smtp.handler.messages)
                delivery.sweep(session, rt.settings, now=moment)
                for edition_id in ids:
                    lane(session, rt, sender, edition_id)
                for m in smtp.handler.messages[before:]:
                    got[m.rcpt].append(moment)
        finally:
            sender.close()
    assert len(ids) == 2
    for edition_id in ids:
        assert {s for s, _ in rows(session, edition_id).values()} == {"sent"}
        assert session.get(Edition, edition_id).status == EditionStatus.DONE
    for address, zone in READERS.items():
        local = [m.astimezone(ZoneInfo(zone or "Europe/London")) for m in got[address]]
        # Two copies, one per local day, each in the seconds after 07:00 there.
        assert [x.date().isoformat() for x in local] == ["2026-03-08", "2026-03-09"], address
        assert all((x.hour, x.minute) == (7, 0) for x in local), (address, local)
        assert len({m.message["Message-ID"] for m in smtp.handler.to(address)}) == 2


def test_a_stored_zone_this_system_does_not_know_gets_the_digest_zone(session, rt, dispatch):
    t = factories.topic(session)
    factories.reader(session, "old@example.org", topics=[t]).timezone = "Mars/Olympus"
    factories.reader(session, "ok@example.org", topics=[t]).timezone = "Asia/Kathmandu"
    d = factories.digest(session, topics=[t], timezone="America/New_York")
    digests.save_digest(session, {"schedule": "daily 06:30 reader-local"}, d)
    slot = utc(2026, 11, 1, 16, 20)
    d.next_run_at = slot
    factories.article(session, topics=[t], published_at=slot - timedelta(hours=1))
    session.commit()
    [edition_id] = scheduler.run_due(session, rt.settings, now=slot)
    assert session.get(Edition, edition_id).local_send == "2026-11-02T06:30"
    assert editions.prepare_edition(session, rt.settings, edition_id) == 2
    assert rows(session, edition_id) == {
        "old@example.org": ("waiting", utc(2026, 11, 2, 11, 30)),  # New York, EST
        "ok@example.org": ("waiting", utc(2026, 11, 2, 0, 45)),
    }


def test_a_big_zone_is_released_in_committed_chunks(session, rt, dispatch, monkeypatch):
    from mailer.delivery import sweeper

    monkeypatch.setattr(sweeper, "RELEASE_CHUNK", 1)
    d, t = local_world(session)
    edition_id = start_day(session, rt, d, t, utc(2026, 3, 7, 16, 50))
    dispatch.sent.clear()
    # Kiritimati, Kolkata, London and the reader without a zone are due by then.
    report = delivery.sweep(session, rt.settings, now=utc(2026, 3, 8, 7, 0, 5))
    assert report.local_released == 4 and report.woken == [edition_id]
    assert dispatch.names().count("mailer.send_lane") == rt.settings.send_lanes
    assert sorted(s for s, _ in rows(session, edition_id).values()) == [
        "pending", "pending", "pending", "pending", "waiting", "waiting"]
