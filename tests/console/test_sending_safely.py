"""Send now asks first (with the reach and a last test send), digests archive,
drafts are curated (pin, move, drop), and the command line says the count."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from mailer import editions
from mailer.content import archive_digest
from mailer.editions import run_due
from mailer.models import Article, Delivery, Edition, EditionVariant, utcnow
from tests.support import factories


def _digest_with_readers(session, readers=3, name="Daily", **fields):
    t = factories.topic(session)
    for _ in range(readers):
        factories.reader(session, topics=[t])
    articles = [factories.article(session, topics=[t], title=f"Story {n}") for n in range(3)]
    return factories.digest(session, name, topics=[t], **fields), articles


def test_send_now_confirmation_shows_the_reach_and_offers_a_test(editor, session, sender):
    digest, _ = _digest_with_readers(session, readers=3)
    page = editor.get(f"/console/digests/{digest.id}/send").get_data(as_text=True)
    assert 'data-field="readers">3<' in page and "Send to 3 readers" in page
    assert 'name="next" value="confirm"' in page
    r = editor.post(f"/console/digests/{digest.id}/test-send",
                    {"addresses": "me@example.org", "next": "confirm"})
    assert r.headers["Location"].endswith(f"/console/digests/{digest.id}/send")
    assert [rcpt for _, rcpt, _ in sender.messages] == ["me@example.org"]
    assert session.scalar(select(func.count()).select_from(Edition)) == 0
    r = editor.post(f"/console/digests/{digest.id}/send", {"confirmed": "yes", "readers": "3"})
    assert r.status_code == 302 and session.scalar(select(func.count()).select_from(Edition)) == 1


def test_confirmation_page_says_why_nothing_would_go(editor, session):
    digest = factories.digest(session, "Lonely")
    page = editor.get(f"/console/digests/{digest.id}/send").get_data(as_text=True)
    assert "Nothing to send: no confirmed readers" in page and "Send to" not in page


def test_viewers_see_the_reach_but_cannot_send(viewer, session):
    digest, _ = _digest_with_readers(session)
    page = viewer.get(f"/console/digests/{digest.id}/send").get_data(as_text=True)
    assert 'data-field="readers">3<' in page and 'disabled title="Viewers cannot send"' in page
    r = viewer.post(f"/console/digests/{digest.id}/send", {"confirmed": "yes"})
    assert r.status_code == 403
    assert session.scalar(select(func.count()).select_from(Edition)) == 0


def test_archived_digest_is_not_listed_scheduled_or_sent_and_keeps_editions(
        editor, api, session, rt, dispatch):
    digest, _ = _digest_with_readers(session, schedule="daily 07:00")
    edition = editions.start_edition(session, digest.id)
    digest.next_run_at = utcnow() - timedelta(minutes=1)
    session.commit()
    r = editor.post(f"/console/digests/{digest.id}/archive")
    assert r.status_code == 302
    session.refresh(digest)
    assert digest.archived_at is not None and digest.next_run_at is None
    listing = editor.get("/console/digests").get_data(as_text=True)
    assert "Archived digests" in listing
    assert [d["name"] for d in api.get("/api/v1/digests").json["digests"]] == []
    assert [d["name"] for d in api.get("/api/v1/digests?archived=1").json["digests"]] == ["Daily"]
    assert run_due(session, rt.settings) == []
    assert session.get(Edition, edition.id) is not None  # history kept
    plan = editions.plan_send(session, digest.id)
    assert plan.readers == 0 and plan.reason == "the digest is archived"
    editor.post(f"/console/digests/{digest.id}/restore")
    session.refresh(digest)
    assert digest.archived_at is None and digest.next_run_at is not None


def test_digest_form_saves_intro_and_section_order(editor, session):
    digest, _ = _digest_with_readers(session)
    r = editor.post(f"/console/digests/{digest.id}", {
        "name": "Daily", "intro": "Hello town.\n\nSecond paragraph.",
        "section_order": "sport, local", "max_articles": "10"})
    assert r.status_code == 302
    session.refresh(digest)
    assert digest.intro == "Hello town.\n\nSecond paragraph."
    assert digest.section_order == ["sport", "local"]
    r = editor.post(f"/console/digests/{digest.id}", {"name": "Daily", "section_order": "Not A Slug!"})
    assert r.status_code == 400


def test_draft_stories_pin_move_drop_and_the_edition_follows(editor, session, rt, dispatch):
    digest, _articles = _digest_with_readers(session, readers=2, approval="draft")
    draft = editions.start_edition(session, digest.id, slot="2026-11-29T07:00Z")
    assert draft.status == "draft"
    newest_first = list(draft.article_ids)
    last = newest_first[-1]
    page = editor.get(f"/console/editions/{draft.id}/stories").get_data(as_text=True)
    assert "Make lead" in page and "Lead" in page
    editor.post(f"/console/editions/{draft.id}/stories", {"action": "pin", "article": str(last)})
    editor.post(f"/console/editions/{draft.id}/stories", {"action": "drop",
                                                          "article": str(newest_first[0])})
    editor.post(f"/console/editions/{draft.id}/stories", {"subject": "Our pick of the day"})
    r = editor.post(f"/console/editions/{draft.id}/stories", {"action": "fly", "article": "1"},
                    follow_redirects=True)
    assert "action must be one of" in r.get_data(as_text=True).lower()
    session.refresh(draft)
    assert draft.article_ids == [last, newest_first[1]] and draft.dropped_ids == [newest_first[0]]
    preview = editor.get(f"/console/editions/{draft.id}/preview.html")
    assert preview.status_code == 200 and "sandbox" in preview.headers["Content-Security-Policy"]
    html = preview.get_data(as_text=True)
    lead = session.get(Article, last).title
    dropped = session.get(Article, newest_first[0]).title
    assert f">{lead}</a></h1>" in html and dropped not in html
    editions.approve_edition(session, draft.id)
    assert editions.prepare_edition(session, rt.settings, draft.id) == 2
    variants = session.scalars(select(EditionVariant).where(EditionVariant.edition_id == draft.id)).all()
    assert {tuple(v.article_ids) for v in variants} == {(last, newest_first[1])}
    assert all(v.subject == "Our pick of the day" for v in variants)
    assert session.scalar(select(func.count()).select_from(Delivery)) == 2
    # once approved, the stories no longer change
    r = editor.post(f"/console/editions/{draft.id}/stories", {"action": "pin",
                                                              "article": str(newest_first[1])},
                    follow_redirects=True)
    assert "only a draft" in r.get_data(as_text=True)


def test_cli_send_prints_the_count_and_creates_nothing_for_nobody(app, session, dispatch):
    runner = app.test_cli_runner()
    lonely = factories.digest(session, "Lonely")
    result = runner.invoke(args=["send", "Lonely", "--no-wait"])
    assert result.exit_code == 1 and "nothing to send (no confirmed readers)" in result.output
    assert "Traceback" not in result.output
    assert session.scalar(select(func.count()).select_from(Edition)) == 0
    _digest, _ = _digest_with_readers(session, readers=4)
    result = runner.invoke(args=["send", "Daily", "--no-wait"])  # not a terminal: no prompt
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Daily: this edition will reach 4 reader(s) with 3 story(ies).")
    assert session.scalar(select(func.count()).select_from(Edition)) == 1
    assert lonely.id


def test_cli_progress_bar_is_empty_while_compiling():
    from mailer.cli.editions import _bar

    compiling = {"planned": 0, "remaining": 0, "sent": 0, "failed": 0, "unknown": 0,
                 "rate": 0.0, "status": "compiling"}
    assert _bar(compiling).startswith("[" + "." * 30 + "]")
    done = {**compiling, "planned": 4, "sent": 4, "status": "done"}
    assert _bar(done).startswith("[" + "#" * 30 + "]")


def test_demo_seeds_only_an_empty_database(app, session):
    from mailer.demo import seed_demo
    from mailer.models import Article

    assert seed_demo(session) is not None
    first = session.scalar(select(Article).order_by(Article.id))
    session.delete(first)
    session.commit()
    count = session.scalar(select(func.count()).select_from(Article))
    assert seed_demo(session) is None
    assert session.scalar(select(func.count()).select_from(Article)) == count
    result = app.test_cli_runner().invoke(args=["demo"])
    assert "no demo content added" in result.output
    result = app.test_cli_runner().invoke(args=["welcome"])
    assert "/console/" in result.output and "create-editor you@example.org" in result.output


def test_archive_digest_service_keeps_editions(session, dispatch):
    digest, _ = _digest_with_readers(session)
    edition = editions.start_edition(session, digest.id)
    archive_digest(session, digest.id)
    assert session.get(Edition, edition.id).digest_id == digest.id
