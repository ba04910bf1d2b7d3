"""Helpers shared by console views: paging and turning service errors into
plain-language messages shown beside the fields they concern."""

from __future__ import annotations

from collections.abc import Mapping

from flask import flash, request

from mailer.common import ValidationError

PAGE_SIZE = 50

# Short codes services put in `fields`, as a sentence an editor understands.
_PLAIN = {
    "required": "{label} is required.",
    "too long": "{label} is too long.",
    "invalid": "{label} is not valid.",
    "unknown": "{label} is not one we know.",
    "must be an integer": "{label} must be a whole number.",
    "out of range": "{label} is out of the allowed range.",
    "must be a string": "{label} must be text.",
    "must be a list": "{label} must be a list.",
    "not an http(s) URL": "{label} must start with http:// or https://.",
    "already exists": "{label} is already taken.",
}


def page_number() -> int:
    try:
        return min(max(int(request.args.get("page", 1)), 1), 10_000)
    except ValueError:
        return 1


def text_arg(name: str, max_len: int = 200) -> str:
    return " ".join(str(request.args.get(name, "")).split())[:max_len]


def _label(field: str, labels: Mapping[str, str]) -> str:
    return labels.get(field) or field.replace("_", " ").capitalize()


def field_errors(exc: ValidationError, labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """One plain sentence per field. The service's own sentence is used when it
    concerns one field (it says what is wrong, e.g. "Unknown time zone 'Mars'."),
    with the field's form label in place of its internal name."""
    labels = labels or {}
    out: dict[str, str] = {}
    for field, code in exc.fields.items():
        label = _label(field, labels)
        if len(exc.fields) == 1 and exc.message:
            message = exc.message
            if message.startswith(field + " "):
                message = label + message[len(field):]
        else:
            message = _PLAIN.get(code, "{label}: " + code + ".").format(label=label)
        out[field] = message[:1].upper() + message[1:]
    return out


def flash_error(exc: ValidationError, labels: Mapping[str, str] | None = None) -> None:
    """A summary at the top of the page; the details go beside each field."""
    errors = field_errors(exc, labels)
    if len(errors) == 1:
        flash(next(iter(errors.values())), "error")
    elif errors:
        flash("Please correct the fields marked below.", "error")
    else:
        flash(exc.message, "error")
