"""Helpers shared by console views: paging and turning service errors into flashes."""

from __future__ import annotations

from flask import flash, request

from mailer.common import ValidationError

PAGE_SIZE = 50


def page_number() -> int:
    try:
        return min(max(int(request.args.get("page", 1)), 1), 10_000)
    except ValueError:
        return 1


def text_arg(name: str, max_len: int = 200) -> str:
    return " ".join(str(request.args.get(name, "")).split())[:max_len]


def flash_error(exc: ValidationError) -> None:
    detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
    flash(f"{exc.message}" + (f" ({detail})" if detail and detail not in exc.message else ""),
          "error")
