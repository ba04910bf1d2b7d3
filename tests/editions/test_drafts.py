"""Curating a draft edition: the rules of pin, move, drop, restore and subject."""

from __future__ import annotations

import pytest

from mailer import editions
from mailer.common import Conflict, ValidationError
from tests.support import factories


@pytest.fixture
def draft(session, dispatch):  # type: ignore[no-untyped-def]
    t = factories.topic(session)
    factories.reader(session, topics=[t])
    for n in range(3):
        factories.article(session, topics=[t], title=f"Story {n}")
    d = factories.digest(session, topics=[t], approval="draft")
    return editions.start_edition(session, d.id, slot="2026-11-29T07:00Z")


def test_pin_moves_a_story_to_the_top_and_moves_stay_in_bounds(session, draft):
    a, b, c = draft.article_ids
    assert editions.curate_draft(session, draft.id, "pin", str(c)).article_ids == [c, a, b]
    assert editions.curate_draft(session, draft.id, "up", c).article_ids == [c, a, b]
    assert editions.curate_draft(session, draft.id, "down", c).article_ids == [a, c, b]
    assert editions.curate_draft(session, draft.id, "down", b).article_ids == [a, c, b]


def test_drop_and_restore(session, draft):
    a, b, c = draft.article_ids
    edition = editions.curate_draft(session, draft.id, "drop", b)
    assert (edition.article_ids, edition.dropped_ids) == ([a, c], [b])
    with pytest.raises(ValidationError, match="not in this draft"):
        editions.curate_draft(session, draft.id, "pin", b)
    with pytest.raises(ValidationError, match="was not dropped"):
        editions.curate_draft(session, draft.id, "restore", a)
    edition = editions.curate_draft(session, draft.id, "restore", b)
    assert (edition.article_ids, edition.dropped_ids) == ([a, c, b], [])
    editions.curate_draft(session, draft.id, "drop", a)
    editions.curate_draft(session, draft.id, "drop", c)
    with pytest.raises(Conflict, match="at least one story"):
        editions.curate_draft(session, draft.id, "drop", b)


@pytest.mark.parametrize(("action", "article", "field"), [
    ("fly", 1, "action"), ("pin", "x", "article"), ("pin", True, "article"), ("pin", None, "article"),
])
def test_bad_input_names_the_field(session, draft, action, article, field):
    with pytest.raises(ValidationError) as caught:
        editions.curate_draft(session, draft.id, action, article)
    assert field in caught.value.fields


def test_only_drafts_change(session, draft):
    editions.approve_edition(session, draft.id)
    with pytest.raises(Conflict):
        editions.curate_draft(session, draft.id, "pin", draft.article_ids[-1])
    with pytest.raises(Conflict):
        editions.set_edition_subject(session, draft.id, "Too late")


def test_subject_is_one_short_line(session, draft):
    assert editions.set_edition_subject(session, draft.id, "Our\npick ").subject == "Our pick"
    with pytest.raises(ValidationError) as caught:
        editions.set_edition_subject(session, draft.id, "x" * 151)
    assert "subject" in caught.value.fields
