"""The warm-up ramp: a new sending domain sends at most a growing number of
messages per UTC day (`MAILER_WARMUP`), counted in `send_quota_days` so every
worker process and host shares one count.

Lanes reserve slots before they claim rows (one short transaction per chunk)
and hand back what they did not use. When the day's slots are gone, the
edition pauses with the reason and resumes by itself at the next UTC midnight.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailer.config import Settings
from mailer.database import on_postgres
from mailer.models import SendQuotaDay
from mailer.models.base import DbSession


def daily_cap(settings: Settings, day: date, first_day: date) -> int:
    assert settings.warmup is not None
    first, factor, ceiling = settings.warmup
    days = max(0, (day - (settings.warmup_start or first_day)).days)
    return int(min(ceiling, first * factor ** min(days, 64)))


def take_slots(session: DbSession, settings: Settings, domain: str, want: int,
               now: datetime) -> tuple[int, int]:
    """Reserve up to `want` of today's slots for `domain`: (granted, today's cap). Commits."""
    day = now.astimezone(UTC).date()
    dialect = postgresql if on_postgres(session) else sqlite
    session.execute(dialect.insert(SendQuotaDay).values(domain=domain, day=day, used=0)
                    .on_conflict_do_nothing())
    first_day = session.scalar(select(func.min(SendQuotaDay.day))
                               .where(SendQuotaDay.domain == domain)) or day
    cap = daily_cap(settings, day, first_day)
    used_q = select(SendQuotaDay.used).where(SendQuotaDay.domain == domain,
                                             SendQuotaDay.day == day)
    if on_postgres(session):
        used_q = used_q.with_for_update()
    used = session.scalar(used_q) or 0
    granted = max(0, min(want, cap - used))
    if granted:
        session.execute(update(SendQuotaDay)
                        .where(SendQuotaDay.domain == domain, SendQuotaDay.day == day)
                        .values(used=SendQuotaDay.used + granted))
    session.commit()
    return granted, cap


def give_back(session: DbSession, domain: str, count: int, now: datetime) -> None:
    if count <= 0:
        return
    day = now.astimezone(UTC).date()
    session.execute(update(SendQuotaDay)
                    .where(SendQuotaDay.domain == domain, SendQuotaDay.day == day)
                    .values(used=func.max(SendQuotaDay.used - count, 0)
                            if not on_postgres(session)
                            else func.greatest(SendQuotaDay.used - count, 0)))
    session.commit()


def next_day(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), tzinfo=UTC)
