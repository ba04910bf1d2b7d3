"""A rate-limit storage for flask-limiter (the `limits` package) kept in a small
SQLite file, for the embedded default where there is no Redis.

Why a file of its own: the counters must be shared by every web process on the
host (a per-process memory store lets each gunicorn worker grant its own quota),
and they change on every limited request, so they stay out of the application
database and its single writer lock. WAL and `BEGIN IMMEDIATE` make each
increment atomic across processes; one increment is one short local transaction.

URI: `mailer-sqlite:///absolute/path/ratelimits.sqlite`. Fixed windows only
(flask-limiter's default strategy).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from limits.storage import Storage

SCHEME = "mailer-sqlite"


class SQLiteStorage(Storage):
    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        path = (uri or "").split("://", 1)[-1]
        if not path:
            raise ValueError(f"{SCHEME}:// needs a file path")
        self.path = Path(path)
        self._local = threading.local()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def _db(self) -> sqlite3.Connection:
        # One connection per thread and per process (never shared across a fork).
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, "
                         "value INTEGER NOT NULL, expires_at REAL NOT NULL)")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "INSERT INTO counters (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET "
                "value = CASE WHEN expires_at <= ? THEN excluded.value ELSE value + excluded.value END, "
                "expires_at = CASE WHEN expires_at <= ? THEN excluded.expires_at ELSE expires_at END "
                "RETURNING value",
                (key, amount, now + expiry, now, now)).fetchone()
            if now % 60 < 1:  # now and then, forget windows long gone
                conn.execute("DELETE FROM counters WHERE expires_at < ?", (now - 3600,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(row[0])

    def get(self, key: str) -> int:
        row = self._db().execute("SELECT value FROM counters WHERE key = ? AND expires_at > ?",
                                 (key, time.time())).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._db().execute("SELECT expires_at FROM counters WHERE key = ?",
                                 (key,)).fetchone()
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        try:
            self._db().execute("SELECT 1")
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return self._db().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._db().execute("DELETE FROM counters WHERE key = ?", (key,))


def storage_uri(path: Path) -> str:
    return f"{SCHEME}://{path.resolve()}"


def storage_uri_for(redis_url: str | None, instance_path: Path) -> str:
    """Where every process keeps its rate-limit counters: Redis when the broker
    is Redis, else the SQLite file in the instance folder."""
    return redis_url or storage_uri(instance_path / "ratelimits.sqlite")
