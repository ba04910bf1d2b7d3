"""Automations: email sequences started by a trigger, and their own ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.models.base import Base, utcnow
from mailer.models.readers import Topic


class AutomationTrigger:
    READER_CONFIRMED = "reader.confirmed"
    # Editors may choose these.
    ALL = (READER_CONFIRMED,)
    # The system's own re-engagement email (inactive-reader policy): one automation
    # the engine keeps, never listed or edited as an editor's automation.
    READER_INACTIVE = "reader.inactive"


automation_topics = Table(
    "automation_topics",
    Base.metadata,
    Column("automation_id", ForeignKey("automations.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)


class Automation(Base):
    __tablename__ = "automations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    trigger: Mapped[str] = mapped_column(String(40), default=AutomationTrigger.READER_CONFIRMED)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # No topics: every reader who fires the trigger.
    topics: Mapped[list[Topic]] = relationship(secondary=automation_topics, lazy="selectin")
    steps: Mapped[list[AutomationStep]] = relationship(
        back_populates="automation", lazy="selectin", order_by="AutomationStep.position",
        cascade="all, delete-orphan")


class AutomationStep(Base):
    """One email of a sequence. The compiled HTML and text (with reader placeholders)
    are stored: MJML is compiled once per `version`, never per reader."""

    __tablename__ = "automation_steps"
    __table_args__ = (UniqueConstraint("automation_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    automation_id: Mapped[int] = mapped_column(ForeignKey("automations.id", ondelete="CASCADE"))
    position: Mapped[int]
    delay_minutes: Mapped[int] = mapped_column(default=0)
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_mjml: Mapped[str] = mapped_column(Text, default="")  # empty: the default layout
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(default=1)
    # A step removed by an edit keeps its ledger rows (history) but sends nothing more.
    active: Mapped[bool] = mapped_column(default=True)

    automation: Mapped[Automation] = relationship(back_populates="steps")


class AutomationDelivery(Base):
    """The ledger of automation emails: one row per (step, reader), statuses as in
    `DeliveryStatus`; `due_at` is when the step is owed (or the next retry)."""

    __tablename__ = "automation_deliveries"
    __table_args__ = (
        UniqueConstraint("step_id", "reader_id"),
        Index("ix_automation_deliveries_status_due", "status", "due_at"),
        Index("ix_automation_deliveries_reader_id", "reader_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("automation_steps.id", ondelete="CASCADE"))
    # No FK: erasing a reader keeps the anonymous ledger row (as in `deliveries`).
    reader_id: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    smtp_code: Mapped[int | None]
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
