"""A/B subject tests: a sample of an edition's readers gets two to four subjects
first; after a wait the subject with the best rate goes to everyone else.

Every reader gets a ledger row when the edition is planned, in the same single
INSERT ... SELECT as any edition (`split_columns` adds two computed columns):
readers are ordered by a hash of (reader, edition), the first `sample_percent`
of them are `pending` with a subject index (round robin, so the subjects'
samples differ by at most one reader) and the rest are `held`. Lanes only claim
`pending` and due `retry` rows, so a held row is never sent; it still counts as
outstanding, so the edition is not finished while rows wait.

After `wait_minutes` the beat tick (`decide_subject_tests`) counts each
subject's human opens (kind `open`: prefetches and scanners are recorded as
`open-filtered`) or clicks per sent message, records the winner (a tie goes to
the first subject) with the figures that chose it, and releases the held rows
with the winning subject in one UPDATE. Tracking must be on (`MAILER_TRACKING=1`):
without it there is nothing to measure, so such a test is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    distinct,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from mailer.common.errors import ValidationError
from mailer.common.validation import clean_text
from mailer.config import Settings
from mailer.jobs import start_lanes_on_commit
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    ReaderEvent,
    SubjectTest,
    utcnow,
)
from mailer.models.base import DbSession

METRICS = ("clicks", "opens")
MIN_SUBJECTS, MAX_SUBJECTS = 2, 4
SUBJECT_MAX = 150
SAMPLE_RANGE = (5, 50)  # percent of the edition's readers
WAIT_RANGE = (10, 24 * 60)  # minutes
DEFAULT_SAMPLE, DEFAULT_WAIT = 20, 60
# Rows that reached the receiving server: the denominator of a rate.
_DELIVERED = (DeliveryStatus.SENT, DeliveryStatus.BOUNCED)
# Event kinds that count: people, never prefetchers or scanners (`*-filtered`).
_KINDS = {"opens": "open", "clicks": "click"}
_PRIME = 2**31 - 1


@dataclass(frozen=True)
class SubjectTestSpec:
    """A checked A/B test, ready to be stored with a new edition."""

    subjects: tuple[str, ...]
    sample_percent: int = DEFAULT_SAMPLE
    wait_minutes: int = DEFAULT_WAIT
    metric: str = "clicks"


def _whole(raw: object, field: str, default: int, bounds: tuple[int, int], unit: str) -> int:
    if raw is None or raw == "":
        value = default
    elif isinstance(raw, bool):
        raise ValidationError(f"{field} must be a whole number.", {field: "not a number"})
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    else:
        raise ValidationError(f"{field} must be a whole number.", {field: "not a number"})
    low, high = bounds
    if not low <= value <= high:
        raise ValidationError(f"{field} must be between {low} and {high} {unit}.",
                              {field: f"out of range ({low}-{high})"})
    return value


def check_subject_test(subjects: object, sample_percent: object = None,
                       wait_minutes: object = None, metric: object = None, *,
                       tracking: bool) -> SubjectTestSpec | None:
    """The test an editor asked for, or None when no subjects were given. Raises a
    ValidationError naming the field (status 400), before anything is written."""
    if subjects is None or subjects == [] or subjects == ():
        return None
    if not isinstance(subjects, list | tuple):
        raise ValidationError("subjects must be a list of 2 to 4 subjects.",
                              {"subjects": "must be a list"})
    if not MIN_SUBJECTS <= len(subjects) <= MAX_SUBJECTS:
        raise ValidationError(
            f"An A/B test needs {MIN_SUBJECTS} to {MAX_SUBJECTS} subjects ({len(subjects)} given).",
            {"subjects": f"give {MIN_SUBJECTS} to {MAX_SUBJECTS} subjects"})
    cleaned = tuple(clean_text(s, "subjects", SUBJECT_MAX) for s in subjects)
    for n, subject in enumerate(cleaned):
        if not subject:
            raise ValidationError(f"Subject {n + 1} is empty.", {"subjects": f"subject {n + 1} is empty"})
    if len(set(cleaned)) != len(cleaned):
        raise ValidationError("The subjects must differ.", {"subjects": "two subjects are the same"})
    chosen_metric = "clicks" if metric in (None, "") else metric
    if chosen_metric not in METRICS:
        raise ValidationError('metric must be "clicks" or "opens".', {"metric": "unknown metric"})
    spec = SubjectTestSpec(
        subjects=cleaned,
        sample_percent=_whole(sample_percent, "sample_percent", DEFAULT_SAMPLE, SAMPLE_RANGE,
                              "percent"),
        wait_minutes=_whole(wait_minutes, "wait_minutes", DEFAULT_WAIT, WAIT_RANGE, "minutes"),
        metric=str(chosen_metric),
    )
    if not tracking:
        raise ValidationError(
            "A/B subject tests measure opens and clicks: turn tracking on (MAILER_TRACKING=1).",
            {"subjects": "A/B tests need tracking (MAILER_TRACKING=1)"})
    return spec


def add_subject_test(session: DbSession, edition_id: int, spec: SubjectTestSpec) -> SubjectTest:
    """Store the test of a new edition (flushes; the caller commits)."""
    test = SubjectTest(edition_id=edition_id, subjects=list(spec.subjects),
                       sample_percent=spec.sample_percent, wait_minutes=spec.wait_minutes,
                       metric=spec.metric, results=[])
    session.add(test)
    session.flush()
    return test


def split_columns(test: SubjectTest, reader_id: ColumnElement[int]) -> dict[str, ColumnElement[Any]]:
    """The `status` and `subject_index` columns of the planning INSERT ... SELECT.

    A multiplicative hash of (reader, edition) orders the readers (plain integer
    arithmetic: the same on SQLite and PostgreSQL, a different order per edition);
    window functions number them, so the sample has exactly its share (at least
    one reader per subject) and the subjects take turns within it."""
    subjects = len(test.subjects)
    # Modulo the prime 2**31 - 1; every product fits in 64 bits (factors below 2**32
    # and 2**31). The edition's own multiplier reorders readers for each edition.
    prime: ColumnElement[int] = literal_column(str(_PRIME))
    mixed = (reader_id * literal_column("2654435761")) % prime
    spread = (mixed * literal_column(str(test.edition_id * 40503 % (_PRIME - 1) + 1))) % prime
    position = func.row_number().over(order_by=(spread, reader_id))
    total = func.count().over()
    in_sample = or_(position * 100 <= total * test.sample_percent, position <= subjects)
    return {
        "status": case((in_sample, literal(DeliveryStatus.PENDING)), else_=literal(DeliveryStatus.HELD)),
        "subject_index": case((in_sample, (position - 1) % subjects), else_=None),
    }


def planning_columns(session: DbSession, edition_id: int, reader_id: ColumnElement[int]
                     ) -> dict[str, ColumnElement[Any]] | None:
    """The split of an edition with a test (None: no test, plain planning)."""
    test = session.get(SubjectTest, edition_id)
    return None if test is None else split_columns(test, reader_id)


def start_clock(session: DbSession, edition_id: int, now: datetime) -> None:
    """The wait starts when the sample can be sent (the ledger is planned)."""
    test = session.get(SubjectTest, edition_id)
    if test is not None and test.decide_at is None:
        test.decide_at = now + timedelta(minutes=test.wait_minutes)


def _figures(session: DbSession, test: SubjectTest) -> list[dict[str, Any]]:
    """Per subject: sample size, sent, human opens and clicks (distinct readers), rates.
    Counts rows that carry a subject index: before the decision, only the sample."""
    edition_id = test.edition_id
    out: list[dict[str, Any]] = [
        {"index": n, "subject": s, "sample": 0, "sent": 0, "opens": 0, "clicks": 0}
        for n, s in enumerate(test.subjects)]
    for index, planned, sent in session.execute(
        select(Delivery.subject_index, func.count(),
               func.sum(case((Delivery.status.in_(_DELIVERED), 1), else_=0)))
        .where(Delivery.edition_id == edition_id, Delivery.subject_index.is_not(None))
        .group_by(Delivery.subject_index)
    ):
        if index is not None and 0 <= index < len(out):
            out[index]["sample"], out[index]["sent"] = int(planned), int(sent or 0)
    kinds = {kind: name for name, kind in _KINDS.items()}
    for index, kind, readers in session.execute(
        select(Delivery.subject_index, ReaderEvent.kind, func.count(distinct(ReaderEvent.reader_id)))
        .join(Delivery, and_(Delivery.edition_id == ReaderEvent.edition_id,
                             Delivery.reader_id == ReaderEvent.reader_id))
        .where(ReaderEvent.edition_id == edition_id, ReaderEvent.kind.in_(list(kinds)),
               Delivery.subject_index.is_not(None))
        .group_by(Delivery.subject_index, ReaderEvent.kind)
    ):
        if index is not None and 0 <= index < len(out):
            out[index][kinds[kind]] = int(readers)
    for row in out:
        sent = row["sent"]
        row["open_rate"] = round(row["opens"] / sent, 4) if sent else 0.0
        row["click_rate"] = round(row["clicks"] / sent, 4) if sent else 0.0
    return out


def pick_winner(figures: Sequence[dict[str, Any]], metric: str) -> int:
    """The subject with the best rate; a tie goes to the earlier subject."""
    rate = "open_rate" if metric == "opens" else "click_rate"
    return max(range(len(figures)), key=lambda n: (figures[n][rate], -n))


def decide(session: DbSession, settings: Settings, edition_id: int,
           now: datetime | None = None) -> int | None:
    """Pick the winner of one edition's test and release its held rows with that
    subject. Runs once: the decision is claimed with a conditional UPDATE, so two
    ticks cannot both decide. Commits; returns the winner (None: not decided here)."""
    now = now or utcnow()
    test = session.get(SubjectTest, edition_id, populate_existing=True)
    if test is None or test.decided_at is not None:
        return None
    figures = _figures(session, test)
    winner = pick_winner(figures, test.metric)
    claimed = session.execute(
        update(SubjectTest)
        .where(SubjectTest.edition_id == edition_id, SubjectTest.decided_at.is_(None))
        .values(winner=winner, decided_at=now, results=figures)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not claimed:
        session.rollback()
        return None
    released = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.HELD)
        .values(status=DeliveryStatus.PENDING, subject_index=winner)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    status = session.scalar(select(Edition.status).where(Edition.id == edition_id))
    session.execute(
        update(Edition).where(Edition.id == edition_id)
        .values(subject=test.subjects[winner], last_activity_at=now, lanes_woken_at=now)
        .execution_options(synchronize_session=False))
    if released and status == EditionStatus.SENDING:
        # A paused edition keeps its released rows until it is resumed.
        start_lanes_on_commit(session, edition_id, settings.send_lanes)
    session.commit()
    return winner


def decide_subject_tests(session: DbSession, settings: Settings,
                         now: datetime | None = None) -> list[int]:
    """From the beat tick: decide every test whose wait is over. Returns edition ids."""
    now = now or utcnow()
    due = session.scalars(
        select(SubjectTest.edition_id)
        .join(Edition, Edition.id == SubjectTest.edition_id)
        .where(SubjectTest.decided_at.is_(None), SubjectTest.decide_at <= now,
               # DONE: a sample so small that it was everyone still gets its result.
               Edition.status.in_([EditionStatus.SENDING, EditionStatus.PAUSED, EditionStatus.DONE]))
    ).all()
    session.commit()
    return [edition_id for edition_id in due if decide(session, settings, edition_id, now) is not None]


def subject_test_report(session: DbSession, edition_id: int) -> dict[str, Any] | None:
    """What the edition page and the API show: the subjects with their figures
    (live during the wait, as they were at the decision after it), the winner."""
    test = session.get(SubjectTest, edition_id)
    if test is None:
        return None
    figures = list(test.results) if test.decided_at is not None and test.results \
        else _figures(session, test)
    held = session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.HELD)) or 0
    for row in figures:
        row["winner"] = test.winner == row["index"]
    return {
        "subjects": figures,
        "sample_percent": test.sample_percent,
        "wait_minutes": test.wait_minutes,
        "metric": test.metric,
        "decide_at": test.decide_at.isoformat() if test.decide_at else None,
        "winner": test.winner,
        "winner_subject": test.subjects[test.winner] if test.winner is not None else None,
        "decided_at": test.decided_at.isoformat() if test.decided_at else None,
        "held": int(held),
    }
