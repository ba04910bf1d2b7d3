"""Admins change the publication's identity (name, logo, colour, address...).

Values are validated field by field; a bad one stops the whole update and is
named in the error. A field sent as null goes back to its environment default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mailer.common.errors import ValidationError
from mailer.common.validation import clean_long_text, clean_text, clean_url
from mailer.config import Settings
from mailer.models import PUBLICATION_ROW_ID, PublicationSettings, utcnow
from mailer.models.base import DbSession
from mailer.readers.publication import FIELDS, Publication, load_publication

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
# BCP 47 in the shape pages and emails use: a language, then optional
# script/region/variant subtags ("en", "de-CH", "sr-Latn-RS", "es-419").
_LANGUAGE = re.compile(r"[a-zA-Z]{2,3}(-[a-zA-Z]{4})?(-([a-zA-Z]{2}|[0-9]{3}))?(-[a-zA-Z0-9]{5,8})*")


def _clean(name: str, raw: object) -> str:
    if name == "name":
        return clean_text(raw, name, 200, required=True)
    if name == "from_name":
        value = clean_text(raw, name, 200)
        if any(c in value for c in '<>"@'):
            raise ValidationError("from_name must be a plain display name (no <, >, \" or @).",
                                  {name: "not a plain name"})
        return value
    if name in ("logo_url", "website_url"):
        return clean_url(raw, name, required=False)
    if name == "accent_color":
        value = clean_text(raw, name, 7)
        if value and not _COLOUR.fullmatch(value):
            raise ValidationError("accent_color must be a colour like #1a2b3c.",
                                  {name: "not a #rrggbb colour"})
        return value.lower()
    if name == "language":
        value = clean_text(raw, name, 35, required=True)
        if not _LANGUAGE.fullmatch(value):
            raise ValidationError("language must be a language tag such as en, de or pt-BR.",
                                  {name: "not a language tag"})
        return value
    if name == "postal_address":
        return "\n".join(line.strip() for line in clean_long_text(raw, name, 500).splitlines()
                         if line.strip())
    return clean_long_text(raw, name, 1000).strip()  # footer_text


def update_publication(session: DbSession, settings: Settings, data: object,
                       *, updated_by: str = "") -> Publication:
    """Apply the given fields (others keep their value). Commits; nothing is
    written when any field is refused."""
    if not isinstance(data, Mapping):
        raise ValidationError("The body must be a JSON object.")
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise ValidationError(f"Unknown field(s): {', '.join(unknown)}.",
                              {k: "unknown field" for k in unknown})
    cleaned: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    messages: list[str] = []
    for name, raw in data.items():
        if raw is None:
            cleaned[name] = None
            continue
        try:
            cleaned[name] = _clean(name, raw)
        except ValidationError as exc:
            errors.update(exc.fields)
            messages.append(exc.message)
    if errors:
        raise ValidationError(" ".join(messages), errors, status=422)
    row = session.get(PublicationSettings, PUBLICATION_ROW_ID)
    if row is None:
        row = PublicationSettings(id=PUBLICATION_ROW_ID)
        session.add(row)
    for name, value in cleaned.items():
        setattr(row, name, value)
    row.updated_by = updated_by[:320]
    row.updated_at = utcnow()
    session.commit()
    return load_publication(session, settings)


def publication_json(publication: Publication) -> dict[str, Any]:
    return publication.json()
