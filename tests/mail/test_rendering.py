"""CardDeck: one MJML compile serves every selection, with the same body a
compile of just those cards gives."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

from mailer.mail.rendering import CardDeck, FillTemplate, compile_email


def context(n: int) -> dict:
    now = datetime(2026, 11, 25, 7, tzinfo=UTC)
    return {
        "digest": {"name": "Morning", "subject": ""},
        "edition": {"id": 3, "date": now},
        "articles": [
            {"id": 100 + i, "url": f"https://news.example.org/{i}",
             "title": "Tom & Jerry <b> %%name%% café" if i % 4 == 0 else f"Story {i}",
             "author": "Desk" if i % 2 else "", "summary": f"Summary {i}." if i % 3 else "",
             "image_url": f"https://img.example.org/{i}.jpg" if i % 3 else "",
             "published_at": now, "topics": ["Local"] if i % 5 else []}
            for i in range(24)
        ],
        "base_url": "https://news.example.org",
        "archive_url": "https://news.example.org/archive/3",
    }


def body(html: str) -> str:
    return re.sub(r"<!--card:\d+-->|<!--/cards-->", "", html[html.index("<body"):])


def test_assembled_selections_match_direct_compiles():
    ctx = context(24)
    deck = CardDeck("cards", ctx)
    rng = random.Random(4)
    for _ in range(60):
        ids = sorted(rng.sample([a["id"] for a in ctx["articles"]], rng.randint(1, 12)))
        assembled, kept = deck.assemble(ids)
        direct = compile_email("cards", {**ctx, "articles": [a for a in ctx["articles"] if a["id"] in ids]})
        assert kept == len(ids)
        assert body(assembled.html) == body(direct.html)
        assert (assembled.subject, assembled.text) == (direct.subject, direct.text)
        # the shared head carries the CSS of every card kind (a superset)
        assert "mj-column-per-100" in assembled.html[: assembled.html.index("<body")]
        # reader placeholders survive; article text cannot forge one
        filled = FillTemplate(assembled.html).fill(
            {"name": "Ada", "email": "a@x.org", "greeting": "Hi Ada,", "unsubscribe_url": "U",
             "preferences_url": "P"})
        assert "Hi Ada," in filled and "%%" not in filled.replace("%\u200b%", "")


def test_deck_size_guard_keeps_cards_within_budget():
    ctx = context(24)
    deck = CardDeck("cards", ctx)
    ids = [a["id"] for a in ctx["articles"]]
    assembled, kept = deck.assemble(ids, budget=30_000)
    assert 1 <= kept < len(ids)
    assert len(assembled.html.encode()) <= 30_000
    assert assembled.text.count("Read: ") == kept
