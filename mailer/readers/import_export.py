"""CSV import and export of readers.

Import checks the whole file first and writes nothing if any row is wrong; only
a clean file is written, in one transaction. Columns: `email` (required),
`name`, `topics` (slugs separated by `;`, `|` or spaces), `frequency`.
With `consent=True` the rows are readers whose consent is on record: they are
added confirmed and get no email. Without it they are added pending and each
gets the double opt-in email. Addresses already known, repeated in the file, or
suppressed (erased, bounced, complained) are skipped and reported.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select

from mailer.common.errors import ValidationError
from mailer.common.validation import clean_email, clean_slug, clean_text
from mailer.jobs import TaskName, wake_on_commit
from mailer.models import Reader, ReaderEvent, ReaderStatus, Suppression, Topic, utcnow
from mailer.models.base import DbSession
from mailer.readers.subscriptions import clean_frequency, email_hash, email_key

COLUMNS = ("email", "name", "topics", "frequency")
EXPORT_COLUMNS = ("email", "name", "topics", "frequency", "status", "consent_at",
                  "consent_source", "confirmed_at", "created_at")
MAX_ROWS = 200_000
_TOPIC_SPLIT = re.compile(r"[;|\s]+")


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    existing: int = 0
    duplicates: int = 0
    suppressed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "created": self.created, "existing": self.existing,
                "duplicates": self.duplicates, "suppressed": self.suppressed,
                "errors": [{"line": line, "error": msg} for line, msg in self.errors]}


@dataclass
class _Row:
    line: int
    email: str
    name: str
    topics: list[str]
    frequency: str


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"The file is not UTF-8 (byte {exc.start}).", {"file": "not UTF-8"}) from exc


def _parse(text: str, report: ImportReport, known_topics: set[str]) -> list[_Row]:
    if "\x00" in text:
        raise ValidationError("The file contains NUL bytes; it is not a CSV file.", {"file": "binary"})
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise ValidationError(f"The file is not valid CSV: {exc}", {"file": "invalid CSV"}) from exc
    if "email" not in header:
        raise ValidationError("The first line must name the columns, including email.",
                              {"file": "no email column"})
    unknown = sorted(set(header) - set(COLUMNS))
    if unknown:
        raise ValidationError(f"Unknown column(s): {', '.join(unknown)}.", {"file": "unknown columns"})
    reader.fieldnames = header
    rows: list[_Row] = []
    try:
        for record in reader:
            line = reader.line_num
            report.rows += 1
            if report.rows > MAX_ROWS:
                raise ValidationError(f"At most {MAX_ROWS} rows per file.", {"file": "too many rows"})
            if None in record:  # more cells than columns
                report.errors.append((line, "too many cells"))
                continue
            try:
                slugs = sorted({clean_slug(s, "topics")
                                for s in _TOPIC_SPLIT.split(record.get("topics") or "") if s})
                missing = [s for s in slugs if s not in known_topics]
                if missing:
                    raise ValidationError(f"unknown topic(s): {', '.join(missing)}")
                rows.append(_Row(line, clean_email(record.get("email")),
                                 clean_text(record.get("name"), "name", 200), slugs,
                                 clean_frequency((record.get("frequency") or "").strip())))
            except ValidationError as exc:
                report.errors.append((line, exc.message))
    except csv.Error as exc:
        raise ValidationError(f"The file is not valid CSV near line {reader.line_num}: {exc}",
                              {"file": "invalid CSV"}) from exc
    return rows


def import_readers(session: DbSession, data: bytes | str, *, consent: bool,
                   source: str = "import") -> ImportReport:
    """Validate every row, then write all new readers in one transaction (or none)."""
    report = ImportReport()
    topics = {t.slug: t for t in session.scalars(select(Topic))}
    rows = _parse(_decode(data), report, set(topics))
    if report.errors:
        session.rollback()
        return report

    keys = {email_key(r.email) for r in rows}
    existing: set[str] = set()
    suppressed: set[str] = set()
    key_list = sorted(keys)
    for start in range(0, len(key_list), 500):  # bounded IN lists
        chunk = key_list[start:start + 500]
        existing.update(session.scalars(select(Reader.email_key).where(Reader.email_key.in_(chunk))))
        suppressed.update(session.scalars(
            select(Suppression.email_hash).where(Suppression.email_hash.in_([email_hash(k) for k in chunk]))))

    now = utcnow()
    seen: set[str] = set()
    new_readers: list[Reader] = []
    for row in rows:
        key = email_key(row.email)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        if email_hash(key) in suppressed:
            report.suppressed += 1
            continue
        if key in existing:
            report.existing += 1
            continue
        new_readers.append(Reader(
            email=row.email, email_key=key, name=row.name, frequency=row.frequency,
            status=ReaderStatus.CONFIRMED if consent else ReaderStatus.PENDING,
            confirm_nonce=secrets.token_hex(8), consent_at=now, consent_source=source[:200],
            consent_ip="", confirmed_at=now if consent else None,
            confirmation_sent_at=None if consent else now,
            topics=[topics[s] for s in row.topics],
        ))
    session.add_all(new_readers)
    session.flush()
    session.add_all(ReaderEvent(reader_id=r.id, kind="imported",
                                detail={"source": source[:200], "consent": consent})
                    for r in new_readers)
    if not consent and new_readers:
        wake_on_commit(session, TaskName.SEND_CONFIRMATIONS)
    session.commit()
    report.created = len(new_readers)
    return report


def _cell(value: str) -> str:
    # Spreadsheets run cells starting with these as formulas (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_readers(session: DbSession) -> Iterator[str]:
    """CSV lines (header first) of every reader, streamed in id order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        out = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return out

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    last_id = 0
    while True:
        batch = list(session.scalars(
            select(Reader).where(Reader.id > last_id).order_by(Reader.id).limit(1000)))
        if not batch:
            return
        for r in batch:
            # Every cell, the address included (`=1+1@example.org` is a valid address).
            writer.writerow([_cell(value) for value in (
                r.email, r.name, " ".join(sorted(t.slug for t in r.topics)), r.frequency,
                r.status, r.consent_at.isoformat() if r.consent_at else "",
                r.consent_source, r.confirmed_at.isoformat() if r.confirmed_at else "",
                r.created_at.isoformat() if r.created_at else "",
            )])
        last_id = batch[-1].id
        session.expunge_all()
        yield flush()
