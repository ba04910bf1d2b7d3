"""The publication's identity as every page and email shows it (read side).

Lives with readers, the lowest layer that reads the database, because one-off
reader emails need it as much as digests and pages do. Admins change it through
mailer.console.publication.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from email.utils import formataddr, parseaddr
from typing import Any
from urllib.parse import urlsplit

from mailer.config import Settings
from mailer.models import PUBLICATION_ROW_ID, PublicationSettings
from mailer.models.base import DbSession

DEFAULT_ACCENT = "#9b1c1c"
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Publication:
    name: str
    logo_url: str
    accent_color: str
    website_url: str
    postal_address: str
    language: str
    from_name: str
    footer_text: str

    @property
    def accent(self) -> str:
        """The colour to paint with: the setting, or the house default."""
        return self.accent_color or DEFAULT_ACCENT

    @property
    def ink_accent(self) -> str:
        """The accent when white text on it (and it on white) stays readable (WCAG
        contrast 4.5:1), else the house default: a pale brand colour never makes
        buttons or links unreadable."""
        return self.accent if _contrast_with_white(self.accent) >= 4.5 else DEFAULT_ACCENT

    @property
    def address_lines(self) -> list[str]:
        return [line.strip() for line in self.postal_address.splitlines() if line.strip()]

    def from_header(self, mail_from: str) -> str:
        """MAILER_FROM with the publication's display name (the address never changes)."""
        address = parseaddr(mail_from)[1] or mail_from
        return formataddr((self.from_name, address)) if self.from_name else mail_from

    def context(self) -> dict[str, Any]:
        """Plain values for templates (email and web)."""
        return {**asdict(self), "accent": self.accent, "ink_accent": self.ink_accent,
                "address_lines": self.address_lines}

    def json(self) -> dict[str, str]:
        return asdict(self)


def _contrast_with_white(colour: str) -> float:
    try:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    except ValueError:
        return 0.0
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


FIELDS = tuple(f.name for f in fields(Publication))


def publication_defaults(settings: Settings) -> Publication:
    """What the environment says when nobody saved a value."""
    from_name = parseaddr(settings.mail_from)[0].strip()
    host = urlsplit(settings.base_url).hostname or "Newsletter"
    return Publication(
        name=settings.publication_name or from_name or host,
        logo_url=settings.logo_url,
        accent_color=settings.accent_color,
        website_url=settings.website_url,
        postal_address=settings.postal_address,
        language=DEFAULT_LANGUAGE,
        from_name=from_name,
        footer_text="",
    )


def load_publication(session: DbSession, settings: Settings) -> Publication:
    """The effective settings: saved values over the environment defaults."""
    defaults = publication_defaults(settings)
    row = session.get(PublicationSettings, PUBLICATION_ROW_ID)
    if row is None:
        return defaults
    values = {name: getattr(row, name) for name in FIELDS}
    return Publication(**{name: getattr(defaults, name) if value is None else value
                          for name, value in values.items()})
