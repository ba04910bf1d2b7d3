"""Helpers for the delivery engine's tests."""

from __future__ import annotations

from typing import Any

from mailer import delivery, editions
from mailer.models import Edition
from tests.support import factories


def planned_edition(session: Any, rt: Any, readers: int = 5) -> Edition:
    t = factories.topic(session)
    for _ in range(readers):
        factories.reader(session, topics=[t])
    factories.article(session, topics=[t])
    d = factories.digest(session, topics=[t])
    edition = editions.start_edition(session, d.name)
    assert editions.prepare_edition(session, rt.settings, edition.id) == readers
    return edition


def lane(session: Any, rt: Any, sender: Any, edition_id: int, **kw: Any) -> delivery.lane.LaneReport:
    return delivery.run_lane(session, edition_id, settings=rt.settings, sender=sender,
                             tokens=rt.tokens, skeletons=delivery.SkeletonCache(rt.settings, None),
                             **kw)
