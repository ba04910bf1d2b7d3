"""What editors publish: articles, feeds that bring them in, digests that collect them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.models.base import Base, utcnow
from mailer.models.readers import Topic
from mailer.models.segments import Segment

article_topics = Table(
    "article_topics",
    Base.metadata,
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_article_topics_topic_id", "topic_id"),
)

digest_topics = Table(
    "digest_topics",
    Base.metadata,
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    author: Mapped[str] = mapped_column(String(200), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")  # sanitised on the way in
    image_url: Mapped[str] = mapped_column(String(2000), default="")
    published_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    topics: Mapped[list[Topic]] = relationship(secondary=article_topics, lazy="selectin")


class Feed(Base):
    """An RSS/Atom feed polled on a schedule; its status tells editors what went wrong."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str] = mapped_column(String(500), default="")
    # feed category (lower-cased) -> topic slug, e.g. {"defence": "security"}
    category_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    default_topic_slug: Mapped[str] = mapped_column(String(64), default="")
    poll_minutes: Mapped[int] = mapped_column(default=15)
    etag: Mapped[str] = mapped_column(String(500), default="")
    last_modified: Mapped[str] = mapped_column(String(200), default="")
    next_poll_at: Mapped[datetime | None] = mapped_column(index=True)
    last_fetched_at: Mapped[datetime | None]
    last_status: Mapped[str] = mapped_column(String(20), default="new")  # ok | error | new
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_imported: Mapped[int] = mapped_column(default=0)
    paused: Mapped[bool] = mapped_column(default=False)  # not polled while set
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Digest(Base):
    """A recurring newsletter: which topics, when, how many articles, approved how."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    subject: Mapped[str] = mapped_column(String(300), default="")  # blank: template default
    template: Mapped[str] = mapped_column(String(64), default="digest")
    # Schedule text such as "daily 07:00" or "mon 08:00" or a 5-field cron line.
    schedule: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    max_articles: Mapped[int] = mapped_column(default=10)
    approval: Mapped[str] = mapped_column(String(20), default="auto")  # auto | draft
    # "22:00-07:00" in `timezone`: an edition reaching them pauses and resumes by itself.
    quiet_hours: Mapped[str] = mapped_column(String(11), default="", server_default="")
    active: Mapped[bool] = mapped_column(default=True)
    # Shown above the stories of every edition; plain text, blank lines split paragraphs.
    intro: Mapped[str] = mapped_column(Text, default="")
    # Topic slugs in the order their sections appear; topics not listed follow by name.
    section_order: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Archived digests are neither scheduled nor listed; their editions stay.
    archived_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    last_run_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Only readers in this audience (besides the topic and status rules); none: everyone.
    segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("segments.id", ondelete="SET NULL"))

    topics: Mapped[list[Topic]] = relationship(secondary=digest_topics, lazy="selectin")
    segment: Mapped[Segment | None] = relationship(lazy="selectin")
