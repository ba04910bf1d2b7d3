"""The publication's identity: one row, edited by admins, read by every page and email."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, utcnow

PUBLICATION_ROW_ID = 1


class PublicationSettings(Base):
    """A NULL column means "use the environment default" (MAILER_PUBLICATION_NAME and
    friends), so changing the environment still shows until an admin saves a value."""

    __tablename__ = "publication"

    id: Mapped[int] = mapped_column(primary_key=True)  # always PUBLICATION_ROW_ID
    name: Mapped[str | None] = mapped_column(String(200))
    logo_url: Mapped[str | None] = mapped_column(String(2000))
    accent_color: Mapped[str | None] = mapped_column(String(7))
    website_url: Mapped[str | None] = mapped_column(String(2000))
    postal_address: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(35))
    from_name: Mapped[str | None] = mapped_column(String(200))
    footer_text: Mapped[str | None] = mapped_column(Text)
    # Every console account must use two-factor login.
    require_two_factor: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
