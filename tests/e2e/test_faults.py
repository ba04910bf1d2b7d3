"""Fault tests of the delivery engine with real parts: Celery worker and beat
processes, PostgreSQL, Redis and an SMTP server on a socket.

Each test breaks something in the middle of an edition (kill -9 of the worker's
process group, temporary and permanent SMTP refusals, a Redis restart) and then
checks the ledger and what the SMTP server received: nobody twice, nobody lost.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from mailer import create_app
from mailer.extensions import db
from mailer.models import Delivery, Reader, ReaderEvent, ReaderStatus, Suppression, utcnow
from mailer.readers.subscriptions import email_hash
from tests.support import processes, services
from tests.support.redis_server import RedisServer
from tests.support.smtp import Handler, SmtpServer
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

API_TOKEN = "fault-token"
LEASE = 4  # seconds: the sweeper repairs quickly in these tests


@dataclass
class CountingHandler(Handler):
    """Records every RCPT attempt, and can slow DATA down so faults land mid-send."""

    rcpt_attempts: Counter[str] = field(default_factory=Counter)
    data_delay: float = 0.0
    pipelining: bool = True  # advertise RFC 2920 like Postfix does (aiosmtpd does not)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        with self.lock:
            self.rcpt_attempts[address.lower()] += 1
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return await super().handle_DATA(server, session, envelope)

    def message_ids(self) -> list[str]:
        with self.lock:
            return [m.message["Message-ID"] for m in self.messages]

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


class CountingSmtpServer(SmtpServer):
    def __init__(self) -> None:
        super().__init__()
        self.handler = CountingHandler()
        self.controller.handler = self.handler


class FaultStack(Stack):
    smtp: CountingSmtpServer

    def api_post(self, path: str, json: object) -> tuple[int, dict]:
        r = self.app.test_client().post(path, json=json,
                                        headers={"Authorization": f"Bearer {self.api_token}"})
        return r.status_code, r.get_json()

    def edition(self, edition_id: int) -> dict:
        r = self.app.test_client().get(f"/api/v1/editions/{edition_id}",
                                       headers={"Authorization": f"Bearer {self.api_token}"})
        return r.get_json()

    def wait_done(self, edition_id: int, timeout: float = 240) -> dict:
        return self.wait(lambda: (e := self.edition(edition_id))["status"] == "done" and e,
                         timeout, f"edition {edition_id} to finish")

    def add_readers(self, count: int, domain: str = "example.org") -> list[str]:
        """Confirmed readers inserted in one executemany (the API would take minutes)."""
        now = utcnow()
        emails = [f"r{n:05d}@{domain}" for n in range(count)]
        with self.app.app_context():
            db.session.execute(insert(Reader), [
                {"email": e, "email_key": e, "name": f"Reader {n}", "status": "confirmed",
                 "frequency": "immediate", "confirm_nonce": "", "consent_at": now,
                 "consent_source": "test", "consent_ip": "", "created_at": now}
                for n, e in enumerate(emails)])
            db.session.commit()
        return emails

    def start_edition(self) -> int:
        code, _ = self.api_post("/api/v1/articles", {
            "url": f"https://news.example.org/{uuid.uuid4().hex}", "title": "Harbour reopens",
            "summary": "Boats are back."})
        assert code == 201
        self.api_post("/api/v1/digests", {"name": "Daily"})
        code, body = self.api_post("/api/v1/editions", {"digest": "Daily"})
        assert code == 202, body
        return int(body["id"])

    def ledger(self, edition_id: int) -> dict[str, str]:
        """email -> delivery status for the edition."""
        with self.app.app_context():
            rows = db.session.execute(
                select(Reader.email, Delivery.status)
                .join(Reader, Reader.id == Delivery.reader_id)
                .where(Delivery.edition_id == edition_id)).all()
            db.session.remove()
        return {email.lower(): status for email, status in rows}


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator:
    """Builds a PostgreSQL + Redis stack; `own_redis=True` starts a private Redis."""
    services.require("postgres")
    services.require("redis")
    created: list[tuple[FaultStack, str, RedisServer | None]] = []

    def build(own_redis: bool = False, **extra: str) -> tuple[FaultStack, RedisServer | None]:
        redis = None
        broker = services.REDIS_URL
        if own_redis:
            redis = RedisServer(tmp_path)
            redis.start()
            broker = redis.url
        pg_url = services.create_pg_database()
        smtp = CountingSmtpServer()
        smtp.__enter__()
        instance = tmp_path / "instance"
        settings = {
            "MAILER_INSTANCE_PATH": str(instance),
            "MAILER_SECRET_KEY": "fault-secret",
            "MAILER_API_TOKEN": API_TOKEN,
            "MAILER_BASE_URL": "http://mailer.test",
            "MAILER_FROM": "Harbour News <news@mailer.test>",
            "MAILER_CLAIM_LEASE_SECONDS": str(LEASE),
            "MAILER_RETRY_BASE_SECONDS": "1",
            "MAILER_QUEUE": f"fault-{uuid.uuid4().hex[:8]}",
            "MAILER_DATABASE_URL": pg_url,
            "MAILER_BROKER_URL": broker,
            "MAILER_SMTP_URL": smtp.url,
            "MAILER_TICK_SECONDS": "2",
            **extra,
        }
        env = processes.environment(settings)
        release = processes.flask(env, "db", "upgrade")
        assert release.returncode == 0, release.stderr
        app = create_app(
            ratelimit=False, instance_path=instance, secret_key=settings["MAILER_SECRET_KEY"],
            api_token=API_TOKEN, base_url=settings["MAILER_BASE_URL"],
            mail_from=settings["MAILER_FROM"], smtp_url=smtp.url,
            queue_name=settings["MAILER_QUEUE"], claim_lease_seconds=LEASE,
            retry_base_seconds=1.0, database_url=pg_url, broker_url=broker)
        stack = FaultStack("faults", env, app, smtp, tmp_path, API_TOKEN)
        created.append((stack, pg_url, redis))
        return stack, redis

    yield build
    for stack, pg_url, redis in created:
        for proc in stack.procs:
            proc.kill()
        stack.smtp.__exit__()
        with stack.app.app_context():
            db.session.remove()
            db.engine.dispose()
        services.drop_pg_database(pg_url)
        if redis is not None:
            redis.kill()


def assert_each_once(stack: FaultStack, edition_id: int, emails: list[str]) -> dict[str, str]:
    """Exactly one ledger row per reader; `sent` rows arrived exactly once,
    `unknown` rows at most once; no Message-ID ever arrived twice."""
    ledger = stack.ledger(edition_id)
    assert sorted(ledger) == sorted(emails)
    ids = stack.smtp.handler.message_ids()
    duplicates = [mid for mid, n in Counter(ids).items() if n > 1]
    assert duplicates == []
    received = Counter(m.rcpt.lower() for m in stack.smtp.handler.messages)
    for email, status in ledger.items():
        if status == "sent":
            assert received[email] == 1, (email, status)
        else:
            assert status == "unknown", (email, status)
            assert received[email] <= 1
    return ledger


def test_kill_9_of_the_worker_mid_edition_then_restart_sends_each_reader_once(make_stack):
    stack, _ = make_stack()
    emails = stack.add_readers(1200)
    stack.smtp.handler.data_delay = 0.004  # ~250/s per connection: the kill lands mid-send
    worker = stack.worker("worker-a")
    stack.beat()
    edition_id = stack.start_edition()

    stack.wait(lambda: stack.smtp.handler.count() >= 300, 120, "the send to get going")
    worker.kill()  # SIGKILL to the whole process group: parent and prefork children
    at_kill = stack.smtp.handler.count()
    assert at_kill < len(emails), "the edition finished before the kill; slow the server more"

    stack.worker("worker-b")
    final = stack.wait_done(edition_id)

    ledger = assert_each_once(stack, edition_id, emails)
    statuses = Counter(ledger.values())
    print(f"killed after {at_kill} messages; ledger {dict(statuses)}")
    # At most one message per connection can be cut mid-transaction (2 lanes ran,
    # each with its MAILER_LANE_CONNECTIONS connections).
    assert statuses["unknown"] <= 2 * stack.app.extensions["mailer"].settings.lane_connections
    assert statuses["sent"] + statuses["unknown"] == len(emails)
    assert final["sent"] == statuses["sent"] and final["unknown"] == statuses["unknown"]
    assert final["remaining"] == 0


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_451_then_accept_delivers_each_once(make_stack, pipelining):
    stack, _ = make_stack()
    stack.smtp.handler.pipelining = pipelining
    emails = stack.add_readers(60)
    deferred = emails[::7]
    for email in deferred:
        stack.smtp.handler.rcpt_script[email] = ["451 4.7.1 try again later",
                                                 "451 4.7.1 still busy"]
    stack.worker()
    stack.beat()
    edition_id = stack.start_edition()
    final = stack.wait_done(edition_id, timeout=180)

    ledger = assert_each_once(stack, edition_id, emails)
    assert set(ledger.values()) == {"sent"}
    assert final["sent"] == len(emails) and final["failed"] == 0
    for email in deferred:
        assert stack.smtp.handler.rcpt_attempts[email] == 3  # two refusals, then accepted
    with stack.app.app_context():
        attempts = dict(db.session.execute(
            select(Reader.email, Delivery.attempts).join(Reader, Reader.id == Delivery.reader_id)
            .where(Delivery.edition_id == edition_id)).all())
    assert all(attempts[e] == 3 for e in deferred)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_550_fails_suppresses_and_is_never_retried(make_stack, pipelining):
    stack, _ = make_stack()
    stack.smtp.handler.pipelining = pipelining
    emails = stack.add_readers(20)
    gone = emails[3]
    stack.smtp.handler.rcpt_script[gone] = ["550 5.1.1 no such user"]
    stack.worker()
    stack.beat()
    edition_id = stack.start_edition()
    final = stack.wait_done(edition_id)
    time.sleep(2 * LEASE)  # several sweeper ticks: a retry would show up here

    ledger = stack.ledger(edition_id)
    assert ledger[gone] == "failed"
    assert final["failed"] == 1 and final["sent"] == len(emails) - 1
    assert stack.smtp.handler.rcpt_attempts[gone] == 1
    assert stack.smtp.handler.to(gone) == []
    with stack.app.app_context():
        reader = db.session.scalar(select(Reader).where(Reader.email_key == gone))
        assert reader.status == ReaderStatus.BOUNCED
        assert db.session.scalar(select(func.count()).select_from(Suppression)
                                 .where(Suppression.email_hash == email_hash(gone))) == 1
        assert db.session.scalar(select(func.count()).select_from(ReaderEvent).where(
            ReaderEvent.reader_id == reader.id, ReaderEvent.kind == "bounce")) == 1
        db.session.remove()


def test_redis_restart_mid_edition_completes(make_stack):
    stack, redis = make_stack(own_redis=True)
    assert redis is not None
    emails = stack.add_readers(1000)
    stack.smtp.handler.data_delay = 0.004
    stack.worker()
    stack.beat()
    edition_id = stack.start_edition()
    stack.wait(lambda: stack.smtp.handler.count() >= 150, 120, "the send to get going")
    redis.kill()  # everything queued in it is gone (no persistence)
    time.sleep(2)
    redis.start()  # same port, empty

    final = stack.wait_done(edition_id, timeout=300)
    ledger = assert_each_once(stack, edition_id, emails)
    assert final["remaining"] == 0
    print(f"ledger after the Redis restart: {dict(Counter(ledger.values()))}")
    assert Counter(ledger.values())["sent"] >= len(emails) - 4
