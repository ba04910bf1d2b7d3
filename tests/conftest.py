"""Fixtures: an app per database backend (SQLite and real PostgreSQL), a clean
database per test, recorded task dispatch and an in-memory sender for unit tests."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.orm import Session

from mailer import create_app
from mailer.extensions import db
from mailer.jobs import RecordingDispatcher
from mailer.mail.senders import MemorySender
from mailer.models import Base
from mailer.runtime import Runtime
from tests.support import services

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    services.require("postgres")
    url = services.create_pg_database()
    yield url
    services.drop_pg_database(url)


@pytest.fixture(scope="session")
def base_app(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    instance = tmp_path_factory.mktemp("instance")
    app = create_app(
        testing=True,
        ratelimit=False,
        instance_path=instance,
        database_url=backend_url,
        broker_url="memory://",
        smtp_url="",
        secret_key="test-secret",
        api_token="test-token",
        base_url="http://mailer.test",
        mail_from="Test News <news@mailer.test>",
        signup_min_seconds=0.0,  # the constant-time padding is production behaviour
    )
    with app.app_context():
        upgrade()  # the real migrations, not create_all: they are under test too
    yield app


@pytest.fixture
def app(base_app: Flask) -> Iterator[Flask]:
    with base_app.app_context():
        yield base_app
        db.session.rollback()
        db.session.remove()
        names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())


@pytest.fixture
def settings_override(app: Flask) -> Iterator[Callable[..., None]]:
    """Change settings of the shared app for one test: `settings_override(name=value)`."""
    rt: Runtime = app.extensions["mailer"]
    original = rt.settings

    def apply(**changes: object) -> None:
        rt.settings = dataclasses.replace(rt.settings, **changes)  # type: ignore[arg-type]

    yield apply
    rt.settings = original


@pytest.fixture
def session(app: Flask) -> Session:
    return db.session  # type: ignore[return-value]


@pytest.fixture
def dispatch(app: Flask) -> Iterator[RecordingDispatcher]:
    original = app.extensions["dispatch"]
    recorder = RecordingDispatcher()
    app.extensions["dispatch"] = recorder
    yield recorder
    app.extensions["dispatch"] = original


@pytest.fixture
def sender(app: Flask) -> Iterator[MemorySender]:
    rt: Runtime = app.extensions["mailer"]
    memory = MemorySender()
    rt.sender_override = memory
    yield memory
    rt.sender_override = None


@pytest.fixture
def rt(app: Flask) -> Runtime:
    return app.extensions["mailer"]  # type: ignore[no-any-return]


@pytest.fixture
def client(app: Flask, dispatch: RecordingDispatcher):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def api(client):  # type: ignore[no-untyped-def]
    """The test client with the API token set."""

    class Api:
        headers = {"Authorization": "Bearer test-token"}

        def get(self, path: str, **kw):  # type: ignore[no-untyped-def]
            return client.get(path, headers=self.headers, **kw)

        def post(self, path: str, **kw):  # type: ignore[no-untyped-def]
            return client.post(path, headers=self.headers, **kw)

    return Api()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """One headless Debian Chromium for the whole session (Playwright's sync API
    allows a single running instance per thread)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI requires it")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MAILER_TESTING", "1")
