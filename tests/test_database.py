"""The pool replaces a PostgreSQL connection that died while idle, unseen by callers."""

from __future__ import annotations

import psycopg
from sqlalchemy import create_engine, text

from mailer import database
from tests.support import services


def test_a_connection_killed_while_idle_is_replaced_before_use():
    services.require("postgres")
    url = services.create_pg_database()
    engine = create_engine(url, **database.engine_options(url))
    database.install_idle_ping(engine, idle_seconds=0)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with engine.connect() as conn:  # would raise "terminating connection" without the ping
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()
        services.drop_pg_database(url)


def test_a_busy_connection_is_not_pinged(monkeypatch):
    services.require("postgres")
    url = services.create_pg_database()
    engine = create_engine(url, **database.engine_options(url))
    database.install_idle_ping(engine, idle_seconds=60)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or True)
    try:
        for _ in range(3):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        assert pings == []
    finally:
        engine.dispose()
        services.drop_pg_database(url)
