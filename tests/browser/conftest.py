"""A real stack for browser tests: the app under a real HTTP server (werkzeug in a
thread), a real Celery worker process, a real SMTP server (aiosmtpd), and Debian's
Chromium driven by Playwright; on the embedded SQLite + filesystem broker and on
PostgreSQL + Redis."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from mailer import create_app
from tests.support import processes, services
from tests.support.smtp import SmtpServer, free_port

CHROMIUM = "/usr/bin/chromium"
API_TOKEN = "browser-token"


@dataclass
class Site:
    base_url: str
    app: Flask
    smtp: SmtpServer
    worker: processes.Proc
    stack: str

    def api_post(self, path: str, json: object) -> int:
        client = self.app.test_client()
        return client.post(path, json=json, headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code


@pytest.fixture(params=["embedded", "postgres-redis"])
def site(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    if not Path(CHROMIUM).exists() or shutil.which("celery", path=str(processes.BIN)) is None:
        pytest.skip("needs /usr/bin/chromium and celery in the venv")
    monkeypatch.setenv("MAILER_SIGNUP_MIN_SECONDS", "0")
    backends: dict[str, str] = {}
    if request.param == "postgres-redis":
        services.require("postgres")
        services.require("redis")
        backends = {"MAILER_DATABASE_URL": services.create_pg_database(),
                    "MAILER_BROKER_URL": services.REDIS_URL}
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    instance = tmp_path / "instance"
    with SmtpServer() as smtp:
        settings = {"MAILER_INSTANCE_PATH": str(instance), "MAILER_SECRET_KEY": "browser-secret",
                    "MAILER_API_TOKEN": API_TOKEN, "MAILER_BASE_URL": base_url,
                    "MAILER_FROM": "Harbour News <news@mailer.test>", "MAILER_SMTP_URL": smtp.url,
                    "MAILER_QUEUE": f"browser-{uuid.uuid4().hex[:8]}",
                    "MAILER_ALLOW_PRIVATE_URLS": "1",  # the feed server of the tests is on loopback
                    **backends}
        env = processes.environment(settings)
        release = processes.flask(env, "db", "upgrade")
        assert release.returncode == 0, release.stderr
        app = create_app(ratelimit=False, instance_path=instance, secret_key="browser-secret",
                         api_token=API_TOKEN, base_url=base_url, mail_from=settings["MAILER_FROM"],
                         smtp_url=smtp.url, queue_name=settings["MAILER_QUEUE"],
                         allow_private_urls=True,
                         **({"database_url": backends["MAILER_DATABASE_URL"],
                             "broker_url": backends["MAILER_BROKER_URL"]} if backends else {}))
        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        worker = processes.start_worker(env, tmp_path, "browser-worker", concurrency=1)
        try:
            yield Site(base_url, app, smtp, worker, request.param)
        finally:
            worker.kill()
            server.shutdown()
            with app.app_context():
                from mailer.extensions import db

                db.session.remove()
                db.engine.dispose()
            if backends:
                services.drop_pg_database(backends["MAILER_DATABASE_URL"])


@pytest.fixture(scope="session")
def shots() -> Path:
    folder = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
