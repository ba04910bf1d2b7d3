"""Reader-local sending: an edition reaches each reader at the same wall-clock time
in the reader's own time zone ("daily 07:00 reader-local").

The edition is planned once, like any other: each distinct reader zone gets the
UTC instant of the edition's local date and time there (a few hundred zones at
most, computed in Python with the DST rules of `content.schedules.local_instant`),
written to a temporary (zone, send_at) table, and the one INSERT ... SELECT of
ledger rows joins it: every row is written `waiting` until its instant. The tick
(`delivery.sweeper`) turns due rows `pending` and wakes the lanes; lanes never see
a waiting row, so nothing spins while the next zone's hour is hours away.
Readers who gave no zone (or one this system no longer knows) get the digest's zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, func, insert, select

from mailer.common.errors import ValidationError
from mailer.content.schedules import local_instant
from mailer.editions.planning import plan_readers
from mailer.models import Delivery, DeliveryStatus, Edition, Reader
from mailer.models.base import DbSession, UTCDateTime

_scratch = MetaData()
plan_zones = Table(
    "plan_zones", _scratch,
    Column("zone", String(64), primary_key=True),
    Column("send_at", UTCDateTime()),
    prefixes=["TEMPORARY"],
)


def zone_instants(local_send: str, zones: list[str], default_tz: str) -> dict[str, datetime]:
    """zone name -> the UTC instant of `local_send` there; "" and unknown names
    take `default_tz`."""
    fallback = local_instant(local_send, default_tz or "UTC")
    out: dict[str, datetime] = {}
    for zone in zones:
        try:
            out[zone] = local_instant(local_send, zone) if zone else fallback
        except ValidationError:
            out[zone] = fallback
    return out


def zone_table(session: DbSession, edition: Edition) -> tuple[Table, datetime] | None:
    """For a reader-local edition being prepared: a temporary (zone, send_at) table
    over the distinct zones of the readers planned (`planning.plan_readers`), and
    the instant for anyone else (the digest's zone). `planning.insert_deliveries`
    joins it to write each row `waiting` until its instant. None for other editions."""
    if not edition.local_send:
        return None
    default_tz = edition.digest.timezone or "UTC"
    zones = list(session.scalars(
        select(Reader.timezone).distinct()
        .join(plan_readers, plan_readers.c.reader_id == Reader.id)
    ))
    instants = zone_instants(edition.local_send, zones, default_tz)
    connection = session.connection()
    plan_zones.drop(connection, checkfirst=True)
    plan_zones.create(connection)
    if instants:
        session.execute(insert(plan_zones), [{"zone": z, "send_at": t} for z, t in instants.items()])
    return plan_zones, zone_instants(edition.local_send, [""], default_tz)[""]


def drop_zone_table(session: DbSession) -> None:
    plan_zones.drop(session.connection(), checkfirst=True)


def next_zone_at(session: DbSession, edition_ids: list[int]) -> dict[int, datetime]:
    """edition id -> when its next waiting rows become due (editions with none left out)."""
    if not edition_ids:
        return {}
    rows = session.execute(
        select(Delivery.edition_id, func.min(Delivery.next_attempt_at))
        .where(Delivery.edition_id.in_(edition_ids), Delivery.status == DeliveryStatus.WAITING)
        .group_by(Delivery.edition_id)
    ).all()
    return {edition_id: at for edition_id, at in rows if at is not None}


def zone_progress(session: DbSession, edition: Edition) -> list[dict[str, Any]]:
    """Per reader zone of a reader-local edition: when it is sent and how far it got,
    in send order. Readers without a zone are listed under the digest's zone."""
    if not edition.local_send:
        return []
    default_tz = edition.digest.timezone or "UTC"
    zone = func.coalesce(func.nullif(Reader.timezone, ""), default_tz)
    counts: dict[str, dict[str, int]] = {}
    for name, status, n in session.execute(
        select(zone, Delivery.status, func.count())
        .select_from(Delivery).join(Reader, Reader.id == Delivery.reader_id)
        .where(Delivery.edition_id == edition.id)
        .group_by(zone, Delivery.status)
    ):
        counts.setdefault(str(name), {})[str(status)] = int(n)
    instants = zone_instants(edition.local_send, list(counts), default_tz)
    out = []
    for name, by_status in counts.items():
        out.append({
            "timezone": name,
            "send_at": instants[name].isoformat(),
            "planned": sum(by_status.values()),
            "sent": by_status.get(DeliveryStatus.SENT, 0),
            "waiting": by_status.get(DeliveryStatus.WAITING, 0),
            "remaining": sum(by_status.get(s, 0) for s in DeliveryStatus.OUTSTANDING),
        })
    out.sort(key=lambda row: (row["send_at"], row["timezone"]))
    return out
