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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from markupsafe import escape as markupsafe_escape
from mjml import mjml2html

TEMPLATE_ROOT = Path(__file__).resolve().parents[2] / "templates" / "email"

# Values that differ per reader. Anything else must be known at compile time.
# `confirm_url` is the one-off link of the confirmation and address-change emails.
# `subscribed_note` says why the reader gets the email; the web copy leaves it empty.
READER_FIELDS = ("name", "email", "unsubscribe_url", "preferences_url", "greeting", "track",
                 "confirm_url", "subscribed_note", "keep_url")
_SIG_SEPARATOR = re.compile(r"^--[ \t]*$", re.MULTILINE)
_FIELD_RE = re.compile(r"%%(" + "|".join(READER_FIELDS) + r")%%")


PREHEADER_CHARS = 110


def preheader(articles: list[Mapping[str, Any]], digest: Mapping[str, Any]) -> str:
    """The inbox preview line. The subject names the first article, so this names
    the others (or the first one's summary): no words repeated from the subject."""
    titles = [str(a.get("title") or "") for a in articles[1:4] if a.get("title")]
    if titles:
        text = "Also: " + " · ".join(titles)
    elif articles and articles[0].get("summary"):
        text = str(articles[0]["summary"])
    else:
        text = "The latest stories, picked for you."
    text = " ".join(text.split())
    if len(text) > PREHEADER_CHARS:
        text = text[: PREHEADER_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return text


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
    env.filters["subject_line"] = subject_line
    env.globals["preheader"] = preheader
    return env


SUBJECT_LIMIT = 60


def subject_line(name: str, title: str = "", more: int = 0, limit: int = SUBJECT_LIMIT) -> str:
    """"Name: lead headline (+N)" in at most `limit` characters: the headline is
    shortened at a word; the digest name alone when nothing else fits."""
    name = " ".join(str(name).split())
    title = " ".join(str(title).split())
    if not title:
        return name[:limit]
    suffix = f" (+{more})" if more > 0 else ""
    room = limit - len(name) - 2 - len(suffix)
    if room < 12:
        return (f"{name}{suffix}" if len(name) + len(suffix) <= limit else name[:limit])
    if len(title) > room:
        cut = title[: room - 1].rsplit(" ", 1)[0].rstrip(",;:.-") or title[: room - 1]
        title = cut + "\u2026"
    return f"{name}: {title}{suffix}"


_html_env = _environment(autoescape=True)
_text_env = _environment(autoescape=False)


class TemplateError(Exception):
    """The template set is missing or does not compile."""


@dataclass(frozen=True)
class CompiledEmail:
    subject: str
    html: str  # with %%field%% placeholders
    text: str


# What templates see as `publication` when a caller gives none (tests, previews of
# bare templates); real sends pass the publication settings (readers.publication).
NEUTRAL_PUBLICATION: dict[str, Any] = {
    "name": "Newsletter", "logo_url": "", "accent_color": "", "accent": "#9b1c1c",
    "ink_accent": "#9b1c1c", "website_url": "", "postal_address": "", "address_lines": [],
    "language": "en", "from_name": "", "footer_text": "",
}


# Template sets of one-off emails (confirmations, address changes, automations,
# alerts): never offered or accepted as a digest's layout.
TRANSACTIONAL_TEMPLATES = frozenset({"confirm", "change-email", "login-notice", "automation", "alert",
                                     "reader-link", "reengage"})


def template_names() -> list[str]:
    return sorted(p.name for p in TEMPLATE_ROOT.iterdir()
                  if (p / "body.mjml").exists() and not p.name.startswith("_"))


def digest_layouts() -> list[str]:
    """The template sets a digest may use as its layout."""
    return [name for name in template_names() if name not in TRANSACTIONAL_TEMPLATES]


def compile_email(name: str, context: Mapping[str, Any]) -> CompiledEmail:
    """Render template set `name` for everything readers share; MJML compiled once."""
    if not re.fullmatch(r"[a-z0-9_-]+", name) or not (TEMPLATE_ROOT / name).is_dir():
        raise TemplateError(f"unknown email template {name!r}")
    ctx = {"publication": NEUTRAL_PUBLICATION, **context, "reader": _ReaderPlaceholders()}
    subject, text = _render_text_parts(name, ctx)
    try:
        mjml_source = _html_env.get_template(f"{name}/body.mjml").render(ctx)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {name}: {exc}") from exc
    try:
        compiled_html = mjml2html(mjml_source)
    except Exception as exc:  # mjml-python raises its own error types
        raise TemplateError(f"template {name}: MJML does not compile: {exc}") from exc
    return CompiledEmail(subject=subject, html=compiled_html, text=text)


def _render_text_parts(name: str, ctx: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, text part): plain Jinja, no MJML."""
    try:
        subject = _text_env.get_template(f"{name}/subject.txt").render(ctx)
        text = _text_env.get_template(f"{name}/body.txt").render(ctx)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {name}: {exc}") from exc
    # Subjects are header values: one line, no control characters. A line of
    # "--" is the signature separator, which mail clients know as "-- ".
    text = _SIG_SEPARATOR.sub("-- ", text.strip())
    return " ".join(subject.split()), text + "\n"


# Gmail clips HTML bodies beyond ~102 KB (hiding the unsubscribe link). Compiled
# bodies stay under a budget that leaves room for reader values and links.
GMAIL_CLIP_BYTES = 102_000
HTML_BUDGET_BYTES = 90_000


def html_size(compiled: CompiledEmail) -> int:
    return len(compiled.html.encode("utf-8"))


def compile_capped(
    name: str,
    context_for: Callable[[int], Mapping[str, Any]],
    count: int,
    budget: int = HTML_BUDGET_BYTES,
) -> tuple[CompiledEmail, int]:
    """Compile with the first `count` cards, dropping cards from the end until the
    HTML fits `budget` bytes. Returns (compiled, cards kept); at least one card
    stays even if it alone is over budget."""
    compiled = compile_email(name, context_for(count))
    if count <= 1 or html_size(compiled) <= budget:
        return compiled, count
    # Binary search for the most cards that fit: a handful of ~1 ms compiles.
    best: tuple[CompiledEmail, int] | None = None
    low, high = 1, count - 1
    while low <= high:
        middle = (low + high) // 2
        candidate = compile_email(name, context_for(middle))
        if html_size(candidate) <= budget:
            best, low = (candidate, middle), middle + 1
        else:
            high = middle - 1
    return best or (compile_email(name, context_for(1)), 1)


_CARD_MARK = "<!--card:{}-->"
_END_MARK = "<!--/cards-->"
_PREVIEW_MARK = "mailerpreviewmark7f3a9c"  # a plain word: survives Jinja and MJML as is


class CardDeck:
    """One MJML compile for every article an edition carries; the HTML of any
    selection of them is assembled from the compiled card segments.

    The template marks each card with `<mj-raw><!--card:ID--></mj-raw>` and the
    end of the cards with `<mj-raw><!--/cards--></mj-raw>`; MJML compiles each
    section on its own between such markers, so head + chosen cards + tail is
    the same HTML a compile of just those cards gives. Subject and text part
    are plain Jinja per selection (no MJML). Raises TemplateError when the
    template has no markers (callers then compile per selection).
    """

    def __init__(self, name: str, context: Mapping[str, Any]) -> None:
        if "<!--card:" not in _source(name):
            raise TemplateError(f"template {name} has no card markers")
        self.name = name
        self.context = context
        self.articles = {a["id"]: a for a in context["articles"]}
        html = compile_email(name, {**context, "preview_text": _PREVIEW_MARK}).html
        ends = html.find(_END_MARK)
        starts = [html.find(_CARD_MARK.format(i)) for i in self.articles]
        if ends < 0 or -1 in starts or html.count(_PREVIEW_MARK) != 1 or starts != sorted(starts):
            raise TemplateError(f"template {name} has no card markers")
        bounds = [*starts, ends]
        self.head = html[: bounds[0]]
        self.tail = html[ends + len(_END_MARK):]
        self.cards: dict[int, str] = {}
        for index, article_id in enumerate(self.articles):
            segment = html[bounds[index]: bounds[index + 1]]
            self.cards[article_id] = segment[len(_CARD_MARK.format(article_id)):]
        self.card_bytes = {k: len(v.encode("utf-8")) for k, v in self.cards.items()}
        self.frame_bytes = len((self.head + self.tail).encode("utf-8")) - len(_PREVIEW_MARK)

    def assemble(self, article_ids: list[int], budget: int = HTML_BUDGET_BYTES
                 ) -> tuple[CompiledEmail, int]:
        """The selection's email; cards beyond `budget` bytes are left out.
        Returns (email, cards kept)."""
        ids = [i for i in article_ids if i in self.cards]
        chosen = [self.articles[i] for i in ids]
        preview = preheader(chosen, self.context["digest"])
        preview_html = str(markupsafe_escape(_finalize(preview)))
        size = self.frame_bytes + len(preview_html.encode("utf-8"))
        kept = 0
        for i in ids:
            if kept and size + self.card_bytes[i] > budget:
                break
            size += self.card_bytes[i]
            kept += 1
        body = "".join(self.cards[i] for i in ids[:kept])
        html_out = self.head.replace(_PREVIEW_MARK, preview_html) + body + self.tail
        ctx = {"publication": NEUTRAL_PUBLICATION, **self.context, "articles": chosen[:kept],
               "reader": _ReaderPlaceholders()}
        subject, text = _render_text_parts(self.name, ctx)
        return CompiledEmail(subject=subject, html=html_out, text=text), kept


def _source(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise TemplateError(f"unknown email template {name!r}")
    try:
        return (TEMPLATE_ROOT / name / "body.mjml").read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"unknown email template {name!r}") from exc


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
