"""Digest definitions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select

from mailer.common.errors import Conflict, NotFound, ValidationError
from mailer.common.validation import clean_int, clean_long_text, clean_slug, clean_slugs, clean_text
from mailer.content.schedules import is_reader_local, next_slot, parse_quiet_hours, parse_schedule
from mailer.mail.rendering import digest_layouts
from mailer.models import Digest, Segment, utcnow
from mailer.models.base import DbSession
from mailer.readers.subscriptions import topics_by_slug

MAX_ID = 2**31 - 1  # ids are 32-bit integers: larger numbers cannot name a row


def find_digest(session: DbSession, ref: object) -> Digest:
    """A digest by id or by name."""
    if isinstance(ref, bool) or not isinstance(ref, int | str) or ref == "":
        raise ValidationError("digest must be a digest name or id.", {"digest": "required"})
    conditions = [Digest.name == str(ref)]
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        if not 0 < int(ref) <= MAX_ID:
            raise NotFound(f"No digest named or numbered {ref!r}.")
        conditions.append(Digest.id == int(ref))
    digest = session.scalar(select(Digest).where(or_(*conditions)).order_by(Digest.id).limit(1))
    if digest is None:
        raise NotFound(f"No digest named or numbered {ref!r}.")
    return digest


def save_digest(
    session: DbSession, data: Mapping[str, Any], digest: Digest | None = None
) -> Digest:
    """Create (digest None) or update a digest from plain values. Commits."""
    if not isinstance(data, Mapping):
        raise ValidationError("The body must be a JSON object.")
    creating = digest is None
    name = clean_text(data.get("name", digest.name if digest else None), "name", 200,
                      required=True)
    clash = session.scalar(select(Digest).where(Digest.name == name))
    if clash is not None and clash is not digest:
        raise Conflict(f"A digest named {name!r} exists already.", {"name": "already exists"})
    target = digest or Digest(name=name)
    target.name = name
    if "topics" in data or creating:
        target.topics = topics_by_slug(session, clean_slugs(data.get("topics")))
    if "max_articles" in data or creating:
        target.max_articles = clean_int(data.get("max_articles"), "max_articles", 1, 50, 10)
    if "subject" in data:
        target.subject = clean_text(data.get("subject"), "subject", 300)
    if "intro" in data:
        target.intro = clean_long_text(data.get("intro"), "intro", 2000).strip()
    if "section_order" in data:
        raw = data.get("section_order")
        if isinstance(raw, str):  # the console's "world, sport, culture"
            raw = [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]
        if not isinstance(raw, list) or len(raw) > 100:
            raise ValidationError("section_order must be a list of topic slugs.",
                                  {"section_order": "must be a list of topic slugs"})
        target.section_order = list(dict.fromkeys(clean_slug(s, "section_order") for s in raw))
    if "template" in data:
        template = clean_text(data.get("template"), "template", 64)
        if template not in digest_layouts():
            raise ValidationError(f"Unknown template {template!r}.", {"template": "unknown"})
        target.template = template
    if "approval" in data:
        if data.get("approval") not in ("auto", "draft"):
            raise ValidationError("approval must be 'auto' or 'draft'.", {"approval": "invalid"})
        target.approval = str(data["approval"])
    if "schedule" in data or "timezone" in data:
        schedule = clean_text(data.get("schedule", target.schedule), "schedule", 200)
        tz = clean_text(data.get("timezone") or target.timezone or "UTC", "timezone", 64)
        if schedule:
            _, tz = parse_schedule(schedule, tz)
            target.next_run_at = next_slot(schedule, tz, utcnow())
        else:
            target.next_run_at = None
        target.schedule, target.timezone = schedule, tz
    if "quiet_hours" in data:
        target.quiet_hours = parse_quiet_hours(
            clean_text(data.get("quiet_hours"), "quiet_hours", 20))
    if target.archived_at is not None:
        target.next_run_at = None  # archived digests are never scheduled
    if "segment" in data:
        target.segment = _segment(session, data.get("segment"))
    if creating:
        session.add(target)
    session.commit()
    return target


def _segment(session: DbSession, ref: object) -> Segment | None:
    """The audience a digest targets, by name or id; empty: everyone."""
    if ref in (None, ""):
        return None
    segment = None
    if isinstance(ref, str):
        segment = session.scalar(select(Segment).where(Segment.name == ref))
    if segment is None and not isinstance(ref, bool) and isinstance(ref, int | str) \
            and str(ref).isdigit() and 0 < int(ref) <= MAX_ID:
        segment = session.get(Segment, int(ref))
    if segment is None:
        raise ValidationError(f"Unknown audience {str(ref)[:100]!r}.", {"segment": "unknown"})
    return segment


def digest_json(digest: Digest) -> dict[str, Any]:
    return {
        "id": digest.id,
        "name": digest.name,
        "topics": [t.slug for t in digest.topics],
        "schedule": digest.schedule,
        "timezone": digest.timezone,
        "reader_local": is_reader_local(digest.schedule),
        "max_articles": digest.max_articles,
        "approval": digest.approval,
        "template": digest.template,
        "quiet_hours": digest.quiet_hours,
        "segment": digest.segment.name if digest.segment else None,
        "next_run_at": digest.next_run_at.isoformat() if digest.next_run_at else None,
        "subject": digest.subject,
        "intro": digest.intro,
        "section_order": list(digest.section_order or []),
        "archived_at": digest.archived_at.isoformat() if digest.archived_at else None,
    }


def archive_digest(session: DbSession, ref: object) -> Digest:
    """Stop scheduling and listing a digest; its editions and their ledger stay. Commits."""
    digest = find_digest(session, ref)
    if digest.archived_at is None:
        digest.archived_at = utcnow()
    digest.next_run_at = None
    session.commit()
    return digest


def restore_digest(session: DbSession, ref: object) -> Digest:
    """Bring an archived digest back; its schedule (if any) starts from now. Commits."""
    digest = find_digest(session, ref)
    digest.archived_at = None
    if digest.schedule:
        digest.next_run_at = next_slot(digest.schedule, digest.timezone or "UTC", utcnow())
    session.commit()
    return digest


def list_digests(session: DbSession, *, archived: bool = False) -> list[Digest]:
    """Digests by name: the current ones, or (archived=True) the archived ones."""
    condition = Digest.archived_at.is_not(None) if archived else Digest.archived_at.is_(None)
    return list(session.scalars(select(Digest).where(condition).order_by(Digest.name)))
