"""Digest schedules: human phrases or cron lines, evaluated in a time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from mailer.common.errors import ValidationError

_DAYS = {
    "mon": 1, "monday": 1, "mondays": 1, "tue": 2, "tuesday": 2, "tuesdays": 2,
    "wed": 3, "wednesday": 3, "wednesdays": 3, "thu": 4, "thursday": 4, "thursdays": 4,
    "fri": 5, "friday": 5, "fridays": 5, "sat": 6, "saturday": 6, "saturdays": 6,
    "sun": 0, "sunday": 0, "sundays": 0, "weekdays": -1,
}
_PHRASE = re.compile(r"^(?P<day>[a-z]+)\s+(?P<h>\d{1,2}):(?P<m>\d{2})(?:\s+(?P<tz>[A-Za-z_/+-]+))?$")


def parse_schedule(text: str, default_tz: str = "UTC") -> tuple[str, str]:
    """Return (cron line, time zone) for "daily 07:00 Europe/Berlin",
    "mondays 08:00", "weekdays 06:30" or a 5-field cron line (+ optional zone).

    "daily 07:00 reader-local" (or a cron line ending in reader-local) means 07:00
    in each reader's own zone; the zone returned is then `default_tz`, the zone
    of readers who gave none (see `next_slot` for when such a schedule starts)."""
    raw = " ".join(text.strip().split())
    local = is_reader_local(raw)
    if local:
        raw = raw[: -len(READER_LOCAL)].strip() + " UTC"  # a placeholder zone, dropped below
    match = _PHRASE.match(raw.lower()) if raw else None
    tz = default_tz
    if match:
        tz = raw.split()[2] if match.group("tz") else default_tz
        hour, minute = int(match.group("h")), int(match.group("m"))
        if hour > 23 or minute > 59:
            raise ValidationError("Schedule time must be HH:MM.", {"schedule": "bad time"})
        day = match.group("day")
        if day == "daily":
            cron = f"{minute} {hour} * * *"
        elif day in _DAYS:
            cron = f"{minute} {hour} * * " + ("1-5" if _DAYS[day] == -1 else str(_DAYS[day]))
        else:
            raise ValidationError(f"Unknown day {day!r} in schedule.", {"schedule": "bad day"})
    else:
        fields = raw.split()
        if len(fields) == 6:
            tz = fields.pop()
        cron = " ".join(fields)
        if len(fields) != 5 or not croniter.is_valid(cron):
            raise ValidationError(
                "Schedule must be like 'daily 07:00 Europe/Berlin', 'mondays 08:00' "
                "or a cron line.",
                {"schedule": "invalid"},
            )
    if local:
        tz = default_tz
        fields = cron.split()
        if not (fields[0].isdigit() and fields[1].isdigit()):
            raise ValidationError(
                "A reader-local schedule names one time of day, like 'daily 07:00 reader-local'.",
                {"schedule": "reader-local needs one time of day"})
    check_timezone(tz)
    return cron, tz


# "07:00 reader-local": each reader gets the edition at 07:00 in their own zone.
READER_LOCAL = "reader-local"
# The first zone on Earth to reach any wall-clock time (UTC+14; POSIX "Etc/" signs
# are inverted). A reader-local edition starts when it reaches the schedule's time,
# a little earlier (LOCAL_LEAD) so that planning is done by then.
EARLIEST_ZONE = "Etc/GMT-14"
LOCAL_LEAD = timedelta(minutes=10)


def is_reader_local(schedule: str) -> bool:
    words = (schedule or "").split()
    return bool(words) and words[-1].lower() == READER_LOCAL


def next_slot(schedule: str, tz: str, after: datetime) -> datetime:
    """When a digest's next edition starts (UTC, strictly after `after`). A
    reader-local schedule starts LOCAL_LEAD before its time reaches UTC+14; its
    readers then get it zone by zone (`local_send_for`, `local_instant`)."""
    cron, tz = parse_schedule(schedule, tz)
    if is_reader_local(schedule):
        return next_run(cron, EARLIEST_ZONE, after + LOCAL_LEAD) - LOCAL_LEAD
    return next_run(cron, tz, after)


def local_send_for(slot: datetime) -> str:
    """The wall-clock date and time ("2026-03-08T07:00") every reader gets the
    edition of a reader-local slot at: one local date per edition, so a reader
    gets one edition per day whatever their zone's DST does."""
    return (slot + LOCAL_LEAD).astimezone(ZoneInfo(EARLIEST_ZONE)).strftime("%Y-%m-%dT%H:%M")


def local_instant(local_send: str, tz: str) -> datetime:
    """The UTC instant at which it is `local_send` ("2026-03-08T07:00") in `tz`.

    A wall-clock time the spring change skips is sent at the first instant after
    the gap (the change itself); one the autumn change repeats, at its first
    occurrence."""
    zone = check_timezone(tz)
    wall = datetime.strptime(local_send, "%Y-%m-%dT%H:%M")
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists; fold=0 is the earlier of two occurrences
    # Inside a gap: fold 0 and 1 read it with the offsets before and after the
    # change, which lands on either side of it; find the change to the second.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(first, other), max(first, other)
    after = hi.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def check_timezone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"Unknown time zone {tz!r}.", {"timezone": "unknown"}) from exc


def next_run(cron: str, tz: str, after: datetime) -> datetime:
    """The first slot strictly after `after` (aware), correct across DST changes.

    Wall-clock times the autumn change repeats (02:30 happens twice in Berlin)
    fire once, at their first occurrence; times the spring change skips
    (02:30 does not exist) fire at the first instant after the gap."""
    zone = ZoneInfo(tz)
    iterator = croniter(cron, after.astimezone(zone))
    for _ in range(1000):
        nxt: datetime = iterator.get_next(datetime)
        local = nxt.astimezone(zone)
        if local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset():
            continue  # the second pass through a repeated wall-clock time
        return nxt.astimezone(ZoneInfo("UTC"))
    raise ValidationError("Schedule never fires.", {"schedule": "never fires"})


_QUIET = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def parse_quiet_hours(text: str) -> str:
    """Normalise "22:00-07:00" (a daily window in the digest's time zone; it may
    run past midnight); "" means none."""
    raw = (text or "").strip()
    if not raw:
        return ""
    match = _QUIET.match(raw)
    if not match:
        raise ValidationError("quiet_hours must look like 22:00-07:00.", {"quiet_hours": "format"})
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        raise ValidationError("quiet_hours must be two different times HH:MM-HH:MM.",
                              {"quiet_hours": "bad time"})
    return f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}"


def quiet_until(quiet_hours: str, tz: str, now: datetime) -> datetime | None:
    """When `now` (aware) falls inside the quiet hours, the moment they end (UTC-aware);
    None outside them. Wall-clock times in `tz`, so a DST change moves the window with it."""
    if not quiet_hours:
        return None
    zone = check_timezone(tz or "UTC")
    local = now.astimezone(zone)
    (h1, m1), (h2, m2) = (tuple(int(x) for x in part.split(":"))
                          for part in quiet_hours.split("-"))
    start, end = h1 * 60 + m1, h2 * 60 + m2
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    ends = local.replace(hour=h2, minute=m2, second=0, microsecond=0)
    if ends <= local:
        ends = (local + timedelta(days=1)).replace(hour=h2, minute=m2, second=0, microsecond=0)
    # Re-localise: the wall-clock time may sit on the other side of a DST change.
    ends = ends.replace(tzinfo=None).replace(tzinfo=zone)
    return ends.astimezone(UTC)
