"""Audience rules: validated JSON compiled to SQL conditions the application writes.

A definition is `{"match": "all"|"any", "rules": [rule, ...]}`; a rule is either a
nested definition (up to three levels) or `{"field", "op", "value"}`:

| field | ops | value |
| --- | --- | --- |
| `topics` | `any_of`, `all_of`, `none_of` | list of topic slugs |
| `topics` | `empty` | none (readers who chose no topic: everything) |
| `frequency` | `is`, `is_not` | a frequency or a list of them |
| `source` | `is`, `starts_with`, `contains` | text (the signup source, e.g. `form:homepage`) |
| `signed_up`, `confirmed` | `before`, `after` | ISO date or date-time |
| `signed_up`, `confirmed` | `within_days`, `more_than_days_ago` | whole days |
| `opened`, `clicked` | `within_days`, `not_within_days` | whole days (machine opens never count) |

No user text ever becomes SQL: every value is a bound parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true

from mailer.common.errors import ValidationError
from mailer.models import Frequency, Reader, ReaderEvent, Topic, reader_topics, utcnow

MAX_RULES = 50
MAX_DEPTH = 3
MAX_DAYS = 36_500

_OPS: dict[str, tuple[str, ...]] = {
    "topics": ("any_of", "all_of", "none_of", "empty"),
    "frequency": ("is", "is_not"),
    "source": ("is", "starts_with", "contains"),
    "signed_up": ("before", "after", "within_days", "more_than_days_ago"),
    "confirmed": ("before", "after", "within_days", "more_than_days_ago"),
    "opened": ("within_days", "not_within_days"),
    "clicked": ("within_days", "not_within_days"),
    "timezone": ("is", "is_not"),
    # {"field": "attribute", "op": "equals", "value": {"name": "plan", "value": "pro"}}
    "attribute": ("equals", "not_equals", "exists"),
}
FIELDS = tuple(_OPS)


def _fail(path: str, message: str) -> ValidationError:
    return ValidationError(f"{path}: {message}", {path: message})


def _days(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
        raise _fail(f"{path}.value", f"a whole number of days from 0 to {MAX_DAYS}")
    return value


def _moment(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{path}.value", "an ISO date such as 2026-01-31")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(f"{path}.value", "an ISO date such as 2026-01-31") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


def _clean_rule(rule: object, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    counter[0] += 1
    if counter[0] > MAX_RULES:
        raise _fail("rules", f"at most {MAX_RULES} rules in all")
    if not isinstance(rule, dict):
        raise _fail(path, "must be an object")
    if "rules" in rule or "match" in rule:
        if depth >= MAX_DEPTH:
            raise _fail(path, f"groups nest at most {MAX_DEPTH} levels")
        return clean_definition(rule, path, depth + 1, counter)
    unknown = sorted(set(rule) - {"field", "op", "value"})
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", "unknown key")
    field, op, value = rule.get("field"), rule.get("op"), rule.get("value")
    if field not in _OPS:
        raise _fail(f"{path}.field", f"unknown field; one of {', '.join(FIELDS)}")
    if op not in _OPS[str(field)]:
        raise _fail(f"{path}.op", f"unknown operator for {field}; one of {', '.join(_OPS[str(field)])}")
    if field == "topics":
        if op == "empty":
            return {"field": field, "op": op}
        if (not isinstance(value, list) or not value or len(value) > 100
                or not all(isinstance(v, str) and v for v in value)):
            raise _fail(f"{path}.value", "a non-empty list of topic slugs")
        return {"field": field, "op": op, "value": sorted(set(value))}
    if field == "frequency":
        values = value if isinstance(value, list) else [value]
        if not values or any(v not in Frequency.ALL for v in values):
            raise _fail(f"{path}.value", f"one or more of {', '.join(Frequency.ALL)}")
        return {"field": field, "op": op, "value": sorted(set(values))}
    if field == "source":
        if not isinstance(value, str) or not value or len(value) > 200:
            raise _fail(f"{path}.value", "text of 1 to 200 characters")
        return {"field": field, "op": op, "value": value}
    if field == "timezone":
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > 100 or not all(isinstance(v, str) and 0 < len(v) <= 64
                                                      for v in values):
            raise _fail(f"{path}.value", "one or more IANA time zone names")
        return {"field": field, "op": op, "value": sorted(set(values))}
    if field == "attribute":
        return {"field": field, "op": op, "value": _attribute(value, op, path)}
    if op in ("before", "after"):
        return {"field": field, "op": op, "value": _moment(value, path)}
    return {"field": field, "op": op, "value": _days(value, path)}


def _attribute(value: object, op: str, path: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not (
            1 <= len(value["name"]) <= 64):
        raise _fail(f"{path}.value", 'an object {"name": attribute name, "value": ...}')
    if op == "exists":
        return {"name": value["name"]}
    wanted = value.get("value")
    if not isinstance(wanted, bool | str | int | float) or (
            isinstance(wanted, str) and len(wanted) > 500):
        raise _fail(f"{path}.value.value", "a string, number or boolean to compare with")
    return {"name": value["name"], "value": wanted}


def clean_definition(raw: object, path: str = "", depth: int = 1,
                     counter: list[int] | None = None) -> dict[str, Any]:
    """A checked copy of `raw`; raises ValidationError naming the offending key."""
    counter = counter if counter is not None else [0]
    prefix = f"{path}." if path else ""
    if not isinstance(raw, dict):
        raise _fail(path or "body", "must be an object with match and rules")
    unknown = sorted(set(raw) - {"match", "rules", "name"})
    if unknown:
        raise _fail(f"{prefix}{unknown[0]}", "unknown key")
    match = raw.get("match", "all")
    if match not in ("all", "any"):
        raise _fail(f"{prefix}match", "all or any")
    rules = raw.get("rules")
    if not isinstance(rules, list):
        raise _fail(f"{prefix}rules", "must be a list")
    return {"match": match, "rules": [
        _clean_rule(rule, f"{prefix}rules[{i}]", depth, counter) for i, rule in enumerate(rules)]}


def unknown_topics(definition: dict[str, Any]) -> set[str]:
    slugs: set[str] = set()
    for rule in definition.get("rules", []):
        if "rules" in rule:
            slugs |= unknown_topics(rule)
        elif rule.get("field") == "topics":
            slugs |= set(rule.get("value") or [])
    return slugs


def _engaged(kind: str, since: datetime) -> ColumnElement[bool]:
    return exists().where(ReaderEvent.reader_id == Reader.id, ReaderEvent.kind == kind,
                          ReaderEvent.created_at >= since)


def _rule_condition(rule: dict[str, Any], now: datetime) -> ColumnElement[bool]:
    if "rules" in rule:
        return condition(rule, now)
    field, op = rule["field"], rule["op"]
    value: Any = rule.get("value")
    if field == "timezone":
        return Reader.timezone.in_(value) if op == "is" else Reader.timezone.not_in(value)
    if field == "attribute":
        # JSON path extraction (SQLite json_extract, PostgreSQL ->>), compared as text.
        item = Reader.attributes[value["name"]].as_string()
        if op == "exists":
            present: ColumnElement[bool] = item.is_not(None)
            return present
        raw = value["value"]
        # Booleans come back as true/false (PostgreSQL) or 1/0 (SQLite).
        texts = (["true", "1"] if raw else ["false", "0"]) if isinstance(raw, bool) else [str(raw)]
        matched: ColumnElement[bool] = item.in_(texts)
        return matched if op == "equals" else or_(item.is_(None), not_(matched))
    if field == "topics":
        chosen = exists().where(reader_topics.c.reader_id == Reader.id)
        if op == "empty":
            return not_(chosen)
        ids = select(Topic.id).where(Topic.slug.in_(value))
        some = exists().where(reader_topics.c.reader_id == Reader.id,
                              reader_topics.c.topic_id.in_(ids))
        if op == "any_of":
            return some
        if op == "none_of":
            return not_(some)
        # all_of: as many of the reader's topics among them as there are such topics
        have = (select(func.count()).select_from(reader_topics)
                .where(reader_topics.c.reader_id == Reader.id, reader_topics.c.topic_id.in_(ids))
                .scalar_subquery())
        wanted = select(func.count()).select_from(Topic).where(Topic.slug.in_(value)).scalar_subquery()
        return have == wanted
    if field == "frequency":
        return Reader.frequency.in_(value) if op == "is" else Reader.frequency.not_in(value)
    if field == "source":
        if op == "is":
            return Reader.consent_source == str(value)
        if op == "starts_with":
            return Reader.consent_source.startswith(value, autoescape=True)
        return Reader.consent_source.contains(value, autoescape=True)
    if field in ("signed_up", "confirmed"):
        column = Reader.created_at if field == "signed_up" else Reader.confirmed_at
        if op == "before":
            return column < datetime.fromisoformat(value)
        if op == "after":
            return column > datetime.fromisoformat(value)
        edge = now - timedelta(days=value)
        return column >= edge if op == "within_days" else column < edge
    kind = "open" if field == "opened" else "click"
    recent = _engaged(kind, now - timedelta(days=value))
    return recent if op == "within_days" else not_(recent)


def condition(definition: dict[str, Any], now: datetime | None = None) -> ColumnElement[bool]:
    """The SQL condition on `Reader` of a cleaned definition (no rules: everyone)."""
    now = now or utcnow()
    parts = [_rule_condition(rule, now) for rule in definition.get("rules", [])]
    if not parts:
        return true()
    if definition.get("match") == "any":
        return or_(false(), *parts)
    return and_(true(), *parts)
