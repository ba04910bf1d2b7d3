"""Reader-local sending through the whole stack: beat starts the reader-local
digest, a worker plans it once, and the rows wait. Each zone's hour is then moved
to a few seconds from now (the real zones are hours apart); the beat tick releases
each zone's row when its moment comes and real workers send it over real SMTP:
nobody before their moment, each exactly once, none skipped."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mailer.extensions import db
from mailer.models import Delivery, DeliveryStatus, Digest, Edition, EditionStatus, Reader, utcnow

pytestmark = pytest.mark.e2e

ZONES = {"kolkata@example.org": ("Asia/Kolkata", 4), "london@example.org": ("Europe/London", 8),
         "ny@example.org": ("America/New_York", 12)}


def test_zones_receive_their_copy_when_their_hour_comes(stack):
    api = stack.api()
    assert api.post("/api/v1/topics", json={"slug": "world", "name": "World"}).status_code == 201
    for address, (zone, _) in ZONES.items():
        r = api.post("/api/v1/subscribers", json={"email": address, "topics": ["world"],
                                                  "timezone": zone, "confirmed": True})
        assert r.status_code == 201, r.json
    r = api.post("/api/v1/articles", json={"url": "https://news.example.org/tides",
                                           "title": "Spring tides expected", "topics": ["world"],
                                           "published_at": (utcnow() - timedelta(hours=1)).isoformat()})
    assert r.status_code == 201, r.json
    r = api.post("/api/v1/digests", json={"name": "Morning", "topics": ["world"],
                                          "schedule": "daily 07:00 reader-local"})
    assert r.status_code == 201 and r.json["reader_local"], r.json
    digest_id = r.json["id"]
    stack.env["MAILER_TICK_SECONDS"] = "1"
    stack.worker()
    stack.beat()
    with stack.app.app_context():
        db.session.execute(update(Digest).where(Digest.id == digest_id)
                           .values(next_run_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()

    def planned():
        with stack.app.app_context():
            db.session.expire_all()
            waiting = db.session.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.status == DeliveryStatus.WAITING))
            return waiting == len(ZONES)
    stack.wait(planned, 90, "the edition to be planned with its rows waiting")

    # Each zone's hour, a few seconds apart from now on.
    start = utcnow()
    with stack.app.app_context():
        for address, (_, seconds) in ZONES.items():
            reader_id = db.session.scalar(select(Reader.id).where(Reader.email_key == address))
            db.session.execute(update(Delivery).where(Delivery.reader_id == reader_id)
                               .values(next_attempt_at=start + timedelta(seconds=seconds)))
        db.session.commit()
    started = time.time()
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + 90
    while len(arrived) < len(ZONES) and time.monotonic() < deadline:
        for address in ZONES:
            if address not in arrived and stack.smtp.handler.to(address):
                arrived[address] = time.time() - started
        time.sleep(0.1)
    assert set(arrived) == set(ZONES), arrived
    for address, (_, seconds) in ZONES.items():
        assert arrived[address] >= seconds - 0.5, (address, arrived)  # never before its hour
    assert sorted(arrived, key=arrived.__getitem__) == list(ZONES)

    def finished():
        with stack.app.app_context():
            db.session.expire_all()
            edition = db.session.scalar(select(Edition))
            return edition.status == EditionStatus.DONE and edition
    edition = stack.wait(finished, 30, "the edition to finish")
    time.sleep(3)  # a few more ticks: nothing is sent twice
    for address in ZONES:
        assert len(stack.smtp.handler.to(address)) == 1, address
    assert edition.local_send
