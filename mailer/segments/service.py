"""Saving audiences and counting their readers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from mailer.common.errors import NotFound, ValidationError
from mailer.common.validation import clean_text
from mailer.models import Reader, ReaderStatus, Segment, Topic, utcnow
from mailer.models.base import DbSession
from mailer.segments.rules import clean_definition, condition, unknown_topics


def checked_definition(session: DbSession, raw: object) -> dict[str, Any]:
    definition = clean_definition(raw)
    slugs = unknown_topics(definition)
    if slugs:
        known = set(session.scalars(select(Topic.slug).where(Topic.slug.in_(slugs))))
        missing = sorted(slugs - known)
        if missing:
            raise ValidationError(f"Unknown topic(s): {', '.join(missing)}.",
                                  {"rules": f"unknown topics: {', '.join(missing)}"})
    return definition


def count_readers(session: DbSession, definition: dict[str, Any],
                  now: datetime | None = None) -> int:
    """Confirmed readers the definition matches."""
    return int(session.scalar(
        select(func.count()).select_from(Reader)
        .where(Reader.status == ReaderStatus.CONFIRMED, condition(definition, now))) or 0)


def save_segment(session: DbSession, data: dict[str, Any],
                 segment: Segment | None = None) -> Segment:
    """Create or change an audience; commits. Nothing is saved on bad input."""
    name = clean_text(data.get("name"), "name", 200, required=True)
    definition = checked_definition(session, {k: v for k, v in data.items() if k != "name"})
    clash = session.scalar(select(Segment.id).where(Segment.name == name))
    if clash is not None and (segment is None or clash != segment.id):
        raise ValidationError("An audience with this name exists.", {"name": "already used"},
                              status=409)
    if segment is None:
        segment = Segment(name=name)
        session.add(segment)
    segment.name, segment.definition, segment.updated_at = name, definition, utcnow()
    session.commit()
    return segment


def get_segment(session: DbSession, ref: object) -> Segment:
    segment = None
    if isinstance(ref, int) and not isinstance(ref, bool):
        segment = session.get(Segment, ref)
    elif isinstance(ref, str):
        segment = session.scalar(select(Segment).where(Segment.name == ref))
        if segment is None and ref.isdigit():
            segment = session.get(Segment, int(ref))
    if segment is None:
        raise NotFound("No such audience.")
    return segment


def segment_json(session: DbSession, segment: Segment, with_count: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {"id": segment.id, "name": segment.name, **segment.definition}
    if with_count:
        data["count"] = count_readers(session, segment.definition)
    return data
