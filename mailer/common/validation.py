"""Checks shared by forms, the API, CSV import and the CLI."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from mailer.common.errors import ValidationError

_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def clean_email(raw: object, field: str = "email") -> str:
    """Syntax check and normalisation only: no DNS lookups."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("Please enter an email address.", {field: "required"})
    if len(raw) > 320 or _CTRL.search(raw) or "\n" in raw or "\r" in raw:
        raise ValidationError("That email address is not valid.", {field: "invalid"})
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError(f"That email address is not valid: {exc}", {field: str(exc)}) from exc
    if not result.normalized.isascii():
        # We do not speak SMTPUTF8 to relays; refuse rather than fail at send time.
        raise ValidationError(
            "Addresses with non-ASCII characters are not supported yet.", {field: "non-ascii"}
        )
    return result.normalized


def clean_text(raw: object, field: str, max_len: int, required: bool = False) -> str:
    """One line of text: control characters and CR/LF never get stored."""
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise ValidationError(f"{field} must be a string.", {field: "must be a string"})
    value = " ".join(_CTRL.sub(" ", raw).replace("\r", " ").replace("\n", " ").split())
    if required and not value:
        raise ValidationError(f"{field} is required.", {field: "required"})
    if len(value) > max_len:
        raise ValidationError(
            f"{field} is too long (at most {max_len} characters).", {field: "too long"}
        )
    return value


def clean_long_text(raw: object, field: str, max_len: int) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ValidationError(f"{field} must be a string.", {field: "must be a string"})
    if len(raw) > max_len:
        raise ValidationError(f"{field} is too long.", {field: "too long"})
    return _CTRL.sub("", raw)


def clean_url(raw: object, field: str, required: bool = True) -> str:
    if raw in (None, "") and not required:
        return ""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(f"{field} is required.", {field: "required"})
    value = raw.strip()
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or len(value) > 2000
        or _CTRL.search(value)
        or any(c.isspace() for c in value)
    ):
        raise ValidationError(f"{field} must be an http(s) URL.", {field: "not an http(s) URL"})
    return value


def clean_slug(raw: object, field: str = "slug") -> str:
    if not isinstance(raw, str) or not _SLUG.match(raw):
        raise ValidationError(
            f"{field} must be lower-case letters, digits and dashes (1-64).",
            {field: "invalid slug"},
        )
    return raw


def clean_slugs(raw: object, field: str = "topics") -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or len(raw) > 200:
        raise ValidationError(f"{field} must be a list of topic slugs.", {field: "must be a list"})
    return sorted({clean_slug(item, field) for item in raw})


def clean_datetime(raw: object, field: str) -> datetime | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise ValidationError(f"{field} must be an ISO 8601 date-time.", {field: "invalid"})
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(f"{field} must be an ISO 8601 date-time.", {field: "invalid"}) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def clean_int(raw: object, field: str, lo: int, hi: int, default: int | None = None) -> int:
    if raw is None and default is not None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValidationError(f"{field} must be a whole number.", {field: "must be an integer"})
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationError(f"{field} must be a whole number.", {field: "invalid"}) from exc
    if not lo <= value <= hi:
        raise ValidationError(f"{field} must be between {lo} and {hi}.", {field: "out of range"})
    return value


MAX_ATTRIBUTES = 50


def clean_timezone(value: object, field: str = "timezone") -> str:
    """An IANA time zone name ("Europe/Berlin"), or "" for none."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 64 or "\x00" in value:
        raise ValidationError(f"{field} must be an IANA time zone name.", {field: "not a time zone"})
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone {value!r}.", {field: "unknown time zone"}) from None
    return value


def clean_attributes(value: object, field: str = "attributes") -> dict[str, str | int | float | bool]:
    """A flat JSON object of strings, numbers and booleans (no nesting, no nulls)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object.", {field: "not an object"})
    if len(value) > MAX_ATTRIBUTES:
        raise ValidationError(f"At most {MAX_ATTRIBUTES} attributes.", {field: "too many"})
    clean: dict[str, str | int | float | bool] = {}
    for key, item in value.items():
        name = f"{field}.{key}"[:100]
        if not isinstance(key, str) or not 1 <= len(key) <= 64 or not key.replace("_", "").replace(
                "-", "").isalnum():
            raise ValidationError("Attribute names are 1 to 64 letters, digits, - or _.",
                                  {name: "invalid name"})
        if isinstance(item, bool) or (isinstance(item, int) and abs(item) < 2**53):
            clean[key] = item
        elif isinstance(item, float) and item == item and abs(item) != float("inf"):
            clean[key] = item
        elif isinstance(item, str) and len(item) <= 500:
            clean[key] = item
        else:
            raise ValidationError(f"Attribute {key!r} must be a string (up to 500 characters), "
                                  "a number or a boolean.", {name: "invalid value"})
    return clean
