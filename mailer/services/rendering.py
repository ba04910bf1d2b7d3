"""Compile once, personalise cheaply.

An email template set is `templates/email/<name>/{subject.txt, body.mjml, body.txt}`.
`compile_email` renders it with Jinja for everything readers share (articles,
digest, dates) and compiles the MJML once. Reader values are left as `%%field%%`
placeholders; `FillTemplate` splits the result once and joins each reader's
values in microseconds.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from mjml import mjml2html

TEMPLATE_ROOT = Path(__file__).resolve().parents[2] / "templates" / "email"

# Values that differ per reader. Anything else must be known at compile time.
READER_FIELDS = ("name", "email", "unsubscribe_url", "preferences_url", "greeting", "track")
_FIELD_RE = re.compile(r"%%(" + "|".join(READER_FIELDS) + r")%%")


class _ReaderPlaceholders:
    """`{{ reader.name }}` in a template becomes the placeholder `%%name%%`."""

    def __getattr__(self, field: str) -> Markup:
        if field not in READER_FIELDS:
            raise AttributeError(f"reader has no per-reader field {field!r}")
        return Markup(f"%%{field}%%")  # noqa: S704 - a fixed placeholder, no data


def _finalize(value: Any) -> Any:
    # Shared content (titles, summaries) must never forge a placeholder.
    if isinstance(value, str) and "%%" in value and not isinstance(value, Markup):
        return value.replace("%%", "%\u200b%")
    return value


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_ROOT)),
        autoescape=autoescape,  # noqa: S701 - off only for text/plain parts
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["date"] = lambda d, fmt="%d %B %Y": d.strftime(fmt) if d else ""
    return env


_html_env = _environment(autoescape=True)
_text_env = _environment(autoescape=False)


class TemplateError(Exception):
    """The template set is missing or does not compile."""


@dataclass(frozen=True)
class CompiledEmail:
    subject: str
    html: str  # with %%field%% placeholders
    text: str


def template_names() -> list[str]:
    return sorted(p.name for p in TEMPLATE_ROOT.iterdir() if (p / "body.mjml").exists())


def compile_email(name: str, context: Mapping[str, Any]) -> CompiledEmail:
    """Render template set `name` for everything readers share; MJML compiled once."""
    if not re.fullmatch(r"[a-z0-9_-]+", name) or not (TEMPLATE_ROOT / name).is_dir():
        raise TemplateError(f"unknown email template {name!r}")
    ctx = {**context, "reader": _ReaderPlaceholders()}
    try:
        subject = _text_env.get_template(f"{name}/subject.txt").render(ctx)
        mjml_source = _html_env.get_template(f"{name}/body.mjml").render(ctx)
        text = _text_env.get_template(f"{name}/body.txt").render(ctx)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {name}: {exc}") from exc
    try:
        compiled_html = mjml2html(mjml_source)
    except Exception as exc:  # mjml-python raises its own error types
        raise TemplateError(f"template {name}: MJML does not compile: {exc}") from exc
    # Subjects are header values: one line, no control characters.
    subject = " ".join(subject.split())
    return CompiledEmail(subject=subject, html=compiled_html, text=text.strip() + "\n")


class FillTemplate:
    """A compiled body split at its placeholders, ready for per-reader joins."""

    __slots__ = ("fields", "parts")

    def __init__(self, source: str) -> None:
        pieces = _FIELD_RE.split(source)
        self.parts: list[str] = pieces
        # split() puts captured field names at odd positions
        self.fields: list[tuple[int, str]] = [(i, pieces[i]) for i in range(1, len(pieces), 2)]

    def fill(self, values: Mapping[str, str]) -> str:
        parts = self.parts.copy()
        for index, field in self.fields:
            parts[index] = values.get(field, "")  # e.g. no `track` value in previews
        return "".join(parts)


def escape_values(values: Mapping[str, str]) -> dict[str, str]:
    """HTML-escape reader values for the HTML body (URLs and names alike)."""
    return {key: html.escape(value, quote=True) for key, value in values.items()}
