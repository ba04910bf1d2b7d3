"""Demo content for a fresh install: topics, a dozen articles, one digest.

The articles are invented for this project (a fictional harbour town's paper).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from mailer.automations import save_automation
from mailer.content import save_digest, upsert_article
from mailer.models import Article, Automation, Digest, Topic, utcnow
from mailer.models.base import DbSession

SITE = "https://news.example.org"
AUTHORS = ["Maren Holt", "Tomas Berg", "Ada Quayle", "Jonas Fisher"]

TOPICS = [
    ("local", "Local"),
    ("economy", "Economy"),
    ("science", "Science"),
    ("culture", "Culture"),
    ("security", "Security"),
]

ARTICLES = [
    ("local", "Ferry timetable changes for the winter season",
     "The harbour authority trims the late crossings to the island from December and adds "
     "an early boat for commuters on weekdays."),
    ("local", "Volunteers restore the old lighthouse keeper's cottage",
     "Twenty residents spent three weekends replacing the roof; the cottage will open as a "
     "small museum about the coast guard next spring."),
    ("economy", "Fish market prices steady despite a short autumn catch",
     "Traders say demand from inland restaurants kept prices level even though boats landed "
     "a fifth less cod than last year."),
    ("economy", "Small businesses weigh the cost of the new parking zones",
     "Shop owners on Quay Street are split: some expect more passing trade, others fear "
     "customers from the villages will stay away."),
    ("science", "University team maps seagrass meadows with underwater drones",
     "The survey found the meadows in the bay have grown for a third year in a row, a sign "
     "that cleaner water is paying off."),
    ("science", "Why this winter's storms arrive earlier than they used to",
     "A meteorologist explains how warmer sea surfaces shift the storm track and what that "
     "means for flood defences along the promenade."),
    ("culture", "Harbour film festival announces its programme",
     "Forty films from twelve countries, with an evening of silent shorts accompanied by the "
     "town's brass band on the pier."),
    ("culture", "A century of the Saturday market, told in photographs",
     "The library opens an exhibition of prints donated by three generations of stallholders."),
    ("security", "Coast guard and navy rehearse a joint rescue at sea",
     "The exercise tested radio links between the services and a new procedure for "
     "evacuating a damaged ferry in heavy weather."),
    ("security", "Council debates cameras at the container terminal",
     "Supporters point to cargo thefts; critics ask who will see the footage and for how long "
     "it will be kept."),
    ("local", "School choir wins the regional competition",
     "Thirty-two pupils sang a programme of sea shanties and a new piece written by their "
     "music teacher."),
    ("economy", "Shipyard hires forty apprentices for its repair dock",
     "The yard expects more work refitting ferries to run on batteries and says it cannot find "
     "enough trained welders."),
]


# Sent right after a reader confirms, then a follow-up three days later.
WELCOME = {
    "name": "Welcome",
    "trigger": "reader.confirmed",
    "steps": [
        {"delay_minutes": 0, "subject": "Welcome to the Harbour Herald",
         "body_text": "{{ greeting }}\n\nThank you for confirming your subscription. Your first "
                      "digest arrives with the next edition: the harbour, the town council, the "
                      "fish market and everything in between.\n\nYou can choose topics and how "
                      "often we write at any time: {{ preferences_url }}"},
        {"delay_minutes": 3 * 24 * 60, "subject": "Three things readers like about the Herald",
         "body_text": "{{ greeting }}\n\nThe archive of past editions is open to everyone, "
                      "weekly readers get the whole week in one email, and every email has a "
                      "one-click unsubscribe link. Questions? Just reply."},
    ],
}


def has_content(session: DbSession) -> bool:
    return any(session.scalar(select(model.id).limit(1)) is not None
               for model in (Topic, Article, Digest))


def seed_demo(session: DbSession, base_url: str = "http://127.0.0.1:5000") -> dict[str, int] | None:
    """Demo content for an empty database only: once anything exists (the demo
    itself, or what editors added or deleted since) it returns None and adds
    nothing, so deleted demo stories never come back."""
    if has_content(session):
        return None
    for slug, name in TOPICS:
        if session.scalar(select(Topic).where(Topic.slug == slug)) is None:
            session.add(Topic(slug=slug, name=name))
    session.commit()
    now = utcnow()
    for index, (topic, title, summary) in enumerate(ARTICLES):
        slug = "-".join(title.lower().replace("'", "").split()[:6])
        upsert_article(session, {
            "url": f"{SITE}/{topic}/{slug}",
            "title": title,
            "author": AUTHORS[index % len(AUTHORS)],
            "summary": summary,
            "body_html": f"<p>{summary}</p>",
            "published_at": (now - timedelta(hours=2 * index + 1)).isoformat(),
            "topics": [topic],
        })
    if session.scalar(select(Digest).where(Digest.name == "Morning Briefing")) is None:
        save_digest(session, {
            "name": "Morning Briefing",
            "topics": [slug for slug, _ in TOPICS],
            "schedule": "daily 07:00",
            "timezone": "UTC",
            "max_articles": 10,
            "intro": "Good morning. Here is what happened in the harbour town since yesterday.",
            "section_order": ["local", "economy"],
        })
    if session.scalar(select(Automation).where(Automation.name == "Welcome")) is None:
        save_automation(session, WELCOME, base_url)
    return {"topics": len(TOPICS), "articles": len(ARTICLES), "digests": 1, "automations": 1}
