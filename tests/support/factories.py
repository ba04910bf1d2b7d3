"""Small builders for test data; each commits and returns the row."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailer.models import Article, Digest, Frequency, Reader, ReaderStatus, Topic, utcnow

_seq = itertools.count(1)


def topic(session: Session, slug: str | None = None, name: str | None = None) -> Topic:
    n = next(_seq)
    row = Topic(slug=slug or f"topic-{n}", name=name or f"Topic {n}")
    session.add(row)
    session.commit()
    return row


def reader(
    session: Session,
    email: str | None = None,
    *,
    status: str = ReaderStatus.CONFIRMED,
    topics: list[Topic] | None = None,
    name: str = "",
    frequency: str = Frequency.IMMEDIATE,
) -> Reader:
    n = next(_seq)
    address = email or f"reader{n}@example.org"
    row = Reader(email=address, email_key=address.lower(), name=name, status=status,
                 frequency=frequency, confirm_nonce=f"nonce{n}", topics=topics or [],
                 consent_at=utcnow(), consent_source="test")
    session.add(row)
    session.commit()
    return row


def article(
    session: Session,
    *,
    topics: list[Topic] | None = None,
    title: str | None = None,
    published_at: datetime | None = None,
) -> Article:
    n = next(_seq)
    row = Article(url=f"https://news.example.org/a/{n}", title=title or f"Article {n}",
                  summary=f"Summary of article {n}.", topics=topics or [],
                  published_at=published_at or utcnow() - timedelta(minutes=n))
    session.add(row)
    session.commit()
    return row


def digest(session: Session, name: str | None = None, topics: list[Topic] | None = None,
           **fields: object) -> Digest:
    row = Digest(name=name or f"Digest {next(_seq)}", topics=topics or [], **fields)
    session.add(row)
    session.commit()
    return row
