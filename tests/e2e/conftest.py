"""A whole stack per test: database, broker, real SMTP server, real worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer import create_app
from tests.support import processes, services
from tests.support.smtp import SmtpServer
from tests.support.stack import Stack

API_TOKEN = "e2e-token"



@pytest.fixture(params=["embedded", "postgres-redis"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    instance = tmp_path / "instance"
    settings = {
        "MAILER_INSTANCE_PATH": str(instance),
        "MAILER_SECRET_KEY": "e2e-secret",
        "MAILER_API_TOKEN": API_TOKEN,
        "MAILER_BASE_URL": "http://mailer.test",
        "MAILER_FROM": "Harbour News <news@mailer.test>",
        "MAILER_CLAIM_LEASE_SECONDS": "6",
        "MAILER_RETRY_BASE_SECONDS": "1",
        "MAILER_QUEUE": f"e2e-{uuid.uuid4().hex[:8]}",
        "MAILER_ALLOW_PRIVATE_URLS": "1",  # the test feed server and webhook receivers are on loopback
    }
    pg_url = None
    if request.param == "postgres-redis":
        services.require("postgres")
        services.require("redis")
        pg_url = services.create_pg_database()
        settings["MAILER_DATABASE_URL"] = pg_url
        settings["MAILER_BROKER_URL"] = services.REDIS_URL
    with SmtpServer() as smtp:
        settings["MAILER_SMTP_URL"] = smtp.url
        env = processes.environment(settings)
        release = processes.flask(env, "db", "upgrade")
        assert release.returncode == 0, release.stderr
        overrides = {
            "instance_path": instance,
            "secret_key": settings["MAILER_SECRET_KEY"],
            "api_token": API_TOKEN,
            "base_url": settings["MAILER_BASE_URL"],
            "mail_from": settings["MAILER_FROM"],
            "smtp_url": smtp.url,
            "queue_name": settings["MAILER_QUEUE"],
            "claim_lease_seconds": 6,
            "retry_base_seconds": 1.0,
            "allow_private_urls": True,
        }
        if pg_url:
            overrides["database_url"] = pg_url
            overrides["broker_url"] = services.REDIS_URL
        app = create_app(ratelimit=False, **overrides)
        s = Stack(request.param, env, app, smtp, tmp_path, API_TOKEN)
        try:
            yield s
        finally:
            for proc in s.procs:
                proc.kill()
            with app.app_context():
                from mailer.extensions import db

                db.session.remove()
                db.engine.dispose()
            if pg_url:
                services.drop_pg_database(pg_url)
