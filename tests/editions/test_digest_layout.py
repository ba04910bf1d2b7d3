"""The news digest layout: lead story, topic sections in the configured order,
short subjects, and the size of a real 10-story message."""

from __future__ import annotations

import email
from email import policy

from mailer import delivery, editions
from mailer.editions.compile import arrange
from mailer.mail.rendering import subject_line
from mailer.models import utcnow
from tests.support import factories


def test_subject_line_stays_short():
    assert subject_line("Morning", "Ferry changes", 3) == "Morning: Ferry changes (+3)"
    long = subject_line("Morning Briefing", "Council approves the new budget for the harbour "
                        "district after a debate that went on into the night", 9)
    assert len(long) <= 60 and long.endswith("\u2026 (+9)")
    assert subject_line("A" * 80, "x", 0) == "A" * 60
    assert subject_line("Morning", "", 0) == "Morning"


def test_lead_then_sections_in_the_configured_order(session):
    local, sport, culture = (factories.topic(session, s, s.title()) for s in
                             ("local", "sport", "culture"))
    a = [factories.article(session, topics=[t]) for t in (local, sport, culture, local)]
    loose = factories.article(session)
    d = factories.digest(session, topics=[], section_order=["sport"])
    lead, sections = arrange(d, [a[0], a[1], a[2], a[3], loose])
    assert lead["id"] == a[0].id and lead["section"] == "Local"
    assert [s["name"] for s in sections] == ["Sport", "Culture", "Local", "More stories"]
    assert [x["id"] for x in sections[2]["articles"]] == [a[3].id]


def test_ten_story_message_is_small(session, rt, sender, dispatch):
    t1, t2 = factories.topic(session, "local", "Local"), factories.topic(session, "sport", "Sport")
    factories.reader(session, "reader@example.org", topics=[t1, t2], name="Alexandra Reader")
    for n in range(10):
        a = factories.article(session, topics=[t1 if n % 2 else t2],
                              title=f"Council approves the harbour budget after a long debate, part {n}")
        a.url = f"https://news.example.org/2026/11/29/council-approves-harbour-budget-part-{n}"
        a.summary = ("The council voted on Tuesday to set aside money for the harbour, the schools "
                     "and a new tram line, after a debate that lasted well into the night. ") * 2
        a.author = "Maren Holt"
        a.image_url = f"https://images.example.org/2026/11/harbour-{n}.jpg"
    session.commit()
    d = factories.digest(session, "Morning Briefing", topics=[t1, t2], intro="Good morning.")
    edition = editions.start_edition(session, d.id, now=utcnow())
    editions.prepare_edition(session, rt.settings, edition.id)
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, None))
    raw = sender.messages[0][2]
    msg = email.message_from_bytes(raw, policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    assert html.count("part ") >= 10
    print(f"10-story digest message: {len(raw)} bytes (HTML {len(html.encode())} bytes)")
    assert len(raw) < 45_000
