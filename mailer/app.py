"""The app factory: settings, extensions, the per-process runtime, Celery glue, web and CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import ScriptInfo

from mailer import database
from mailer.celery_setup import celery_init_app
from mailer.cli.commands import register_cli
from mailer.common import limits_storage
from mailer.config import load_settings, missing_instance
from mailer.extensions import csrf, db, limiter, login_manager, migrate
from mailer.jobs import CeleryDispatcher
from mailer.runtime import build_runtime
from mailer.web import register_web
from mailer.web.console.auth import load_editor
from mailer.web.json_provider import SafeJSONProvider

ROOT = Path(__file__).resolve().parent.parent


def create_app(**overrides: Any) -> Flask:
    """Build the app. `overrides` replace settings (tests); the environment
    supplies everything else."""
    context = click.get_current_context(silent=True)
    if not overrides and context is not None and context.find_object(ScriptInfo) is not None:
        # A `flask`/`mailer` command run outside the project creates no stray instance.
        problem = missing_instance()
        if problem:
            raise click.ClickException(problem)
    testing = bool(overrides.pop("testing", False))
    ratelimit = bool(overrides.pop("ratelimit", True))
    settings = load_settings(**overrides)
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(ROOT / "templates" / "web"),
        static_folder=str(ROOT / "mailer" / "static"),
    )
    app.json = SafeJSONProvider(app)  # depth and surrogate checks before any JSON is used
    app.config.update(
        TESTING=testing,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=database.engine_options(settings.database_url),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=20 * 1024 * 1024,
        # Shared by every process: Redis, or a small SQLite file beside the embedded
        # default's other files (see common/limits_storage.py).
        RATELIMIT_STORAGE_URI=limits_storage.storage_uri_for(settings.redis_url,
                                                             settings.instance_path),
        RATELIMIT_HEADERS_ENABLED=False,  # each answer would cost another Redis round trip (bench/web)
        RATELIMIT_ENABLED=ratelimit,
    )
    db.init_app(app)
    with app.app_context():
        database.install_idle_ping(db.engine)  # creates the engine; connects nothing
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.user_loader(load_editor)

    app.extensions["mailer"] = build_runtime(settings)
    celery_app = celery_init_app(app, settings)
    app.extensions["dispatch"] = CeleryDispatcher(
        celery_app, settings.queue_name, settings.redis_url or "",
        wake_folder=settings.instance_path / "broker" / "wakes"
        if settings.uses_embedded_broker else None)

    register_web(app)
    register_cli(app)
    return app
