"""Engine settings per backend."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

from mailer.models.base import DbSession

# A pooled connection idle longer than this is pinged before use (see install_idle_ping).
IDLE_PING_SECONDS = 10.0


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets the web process read while a worker writes; busy_timeout makes
    # concurrent writers wait instead of failing with "database is locked".
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def engine_options(database_url: str) -> dict[str, Any]:
    if database_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_size": 5, "max_overflow": 5}


def install_idle_ping(engine: Engine, idle_seconds: float = IDLE_PING_SECONDS) -> None:
    """Ping a pooled connection before use only when it sat idle for a while.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: one more round trip
    per request (about a tenth of a signup's wall time in bench/web). A connection
    handed back a moment ago is alive; one that idled may have been cut by a
    database restart or a firewall, and is replaced before anyone sees an error.
    """
    if engine.dialect.name == "sqlite":
        return
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _note_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            # The pool drops this connection and checks out a fresh one.
            raise exc.DisconnectionError("connection went away while idle")


def on_postgres(session: DbSession) -> bool:
    """Whether `session` talks to PostgreSQL, where the services take their set-based
    and single-statement fast paths."""
    return session.get_bind().dialect.name == "postgresql"
