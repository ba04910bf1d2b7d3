"""The audit log of editor actions: who did what, when, from where."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import select

from mailer.models import AuditEvent
from mailer.models.base import DbSession

# Form fields worth keeping; anything else (passwords above all) is never stored.
KEPT_FIELDS = ("role", "scope", "name", "email", "addresses", "digest", "statuses", "title",
               "slug", "action")


def record(session: DbSession, action: str, *, editor_id: int | None, actor: str,
           target: str = "", detail: Mapping[str, Any] | None = None, ip: str = "") -> None:
    """Append one event. Commits (after the action it records was committed)."""
    session.add(AuditEvent(editor_id=editor_id, actor=actor[:320], action=action[:80],
                           target=target[:300], detail=dict(detail or {}), ip=ip[:64]))
    session.commit()


def kept(form: Mapping[str, str]) -> dict[str, str]:
    return {k: str(form[k])[:200] for k in KEPT_FIELDS if form.get(k)}


def recent(session: DbSession, limit: int = 200, action: str = "") -> Sequence[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    return session.scalars(query).all()


def _cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_csv(session: DbSession) -> Iterator[str]:
    """Every event, oldest first, as CSV (cells neutralised for spreadsheets)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["at", "actor", "action", "target", "detail", "ip"])
    last = 0
    while True:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.id > last)
                               .order_by(AuditEvent.id).limit(1000)).all()
        for e in rows:
            writer.writerow([_cell(v) for v in (e.created_at.isoformat(), e.actor, e.action,
                                                e.target, json.dumps(e.detail), e.ip)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if not rows:
            return
        last = rows[-1].id
