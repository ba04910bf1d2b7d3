"""Edition reports count people: human opens in rates, machine opens apart, clicks
per article (API and console), and segments' "opened" rule ignoring machine opens."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from mailer import segments
from mailer.common import tokens
from mailer.console import stats
from mailer.editions import edition_engagement
from mailer.models import Article, Delivery, EditionLink, Reader, ReaderEvent, utcnow
from tests.console.world import build_world

CHROME = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131 Safari/537.36"}


def _setup(client, session, rt):  # type: ignore[no-untyped-def]
    """ada opens as a person and clicks a story twice; bob's only open is Apple's
    proxy, and he clicks the story and a non-article link."""
    world = build_world(session, rt, tracking=True)
    session.execute(ReaderEvent.__table__.delete())
    session.execute(update(Delivery).values(sent_at=utcnow() - timedelta(minutes=5)))
    session.commit()
    secret = rt.settings.secret_key
    readers = {r.email: r for r in session.scalars(select(Reader))}
    ada, bob = readers["ada@example.org"], readers["bob@example.org"]
    links = session.scalars(select(EditionLink).where(EditionLink.edition_id == world.edition_id)).all()
    story = next(lk for lk in links if lk.article_id == world.article_id)
    other = next(lk for lk in links if lk.article_id is None)

    def pixel(reader: Reader, agent: dict[str, str]) -> None:
        url = tokens.open_url("", world.edition_id, reader.id, secret, reader.token_nonce)
        assert client.get(url, headers=agent).status_code == 200

    def click(reader: Reader, link: EditionLink) -> None:
        url = tokens.click_url("", world.edition_id, link.id, reader.id, secret, reader.token_nonce)
        assert client.get(url, headers=CHROME).status_code == 302

    pixel(ada, CHROME)
    pixel(bob, {"User-Agent": "Mozilla/5.0"})
    click(ada, story)
    click(ada, story)
    click(bob, story)
    click(bob, other)
    return world, story


def test_api_rates_count_human_opens_and_list_clicks_per_article(client, session, rt, sender, api):
    world, _ = _setup(client, session, rt)
    body = api.get(f"/api/v1/editions/{world.edition_id}").get_json()
    assert body["sent"] == 2 and body["tracked"] is True
    assert (body["opens_human"], body["opens_machine"], body["open_rate"]) == (1, 1, 50.0)
    assert (body["clicks"], body["click_total"], body["click_rate"]) == (2, 4, 100.0)
    titles = [a["title"] for a in body["articles"]]
    # every article of the edition, most clicked first; the unclicked one too
    assert titles[0] == "Harbour ferry timetable" and "Town council meets" in titles
    first = body["articles"][0]
    assert (first["article_id"], first["clicks"], first["click_total"], first["click_rate"]) == (
        world.article_id, 2, 3, 100.0)
    assert all(a["clicks"] == 0 for a in body["articles"][1:])
    assert body["other_links"]["clicks"] == 1 and body["other_links"]["links"] >= 1
    # the fields existing clients read are still there
    assert {"id", "digest", "status", "planned", "sent", "failed", "unknown", "remaining"} <= set(body)
    # lists carry the same figures
    listed = api.get("/api/v1/editions").get_json()["editions"][0]
    assert listed == body
    spec = api.get("/api/v1/openapi.json").get_json()
    assert "opens_machine" in spec["components"]["schemas"]["EditionOut"]["properties"]


def test_api_says_tracking_off_instead_of_zero(client, session, rt, sender, api):
    world = build_world(session, rt, tracking=False)
    body = api.get(f"/api/v1/editions/{world.edition_id}").get_json()
    assert body["tracked"] is False and body.get("opens_human") is None and body.get("articles") is None


def test_console_edition_report_shows_machine_opens_apart(client, session, rt, sender, viewer):
    world, _ = _setup(client, session, rt)
    figures = stats.edition_stats(session, [world.edition_id])[0]
    assert (figures.opens, figures.opens_machine, figures.open_rate) == (1, 1, 50.0)
    page = viewer.get(f"/console/editions/{world.edition_id}").get_data(as_text=True)
    assert "Opens (people)" in page and "Machine opens" in page
    assert "1 (50.0%)" in page  # one person of two: the machine open is not in the rate
    assert "Clicks per article" in page and "Other links" in page
    assert page.index("Harbour ferry timetable") < page.index("Town council meets")


def test_article_deleted_after_sending_keeps_its_row(client, session, rt, sender):
    world, _ = _setup(client, session, rt)
    session.delete(session.get(Article, world.article_id))
    session.commit()
    figures = edition_engagement(session, world.edition_id)
    assert figures.click_total == 4 and figures.clicks == 2  # nothing lost
    assert figures.other_links.click_total == 4  # its link is no article any more


def test_segment_opened_rule_ignores_machine_opens(client, session, rt, sender):
    _setup(client, session, rt)
    opened = {"match": "all", "rules": [{"field": "opened", "op": "within_days", "value": 30}]}
    clicked = {"match": "all", "rules": [{"field": "clicked", "op": "within_days", "value": 30}]}
    # bob's only open came from Apple's proxy: he is no opener; both clicked
    assert segments.count_readers(session, segments.clean_definition(opened)) == 1
    assert segments.count_readers(session, segments.clean_definition(clicked)) == 2


def test_reader_page_shows_where_the_reader_stands_in_the_policy(client, session, rt, sender, viewer):
    world = build_world(session, rt, tracking=True)
    page = viewer.get(f"/console/readers/{world.reader_id}").get_data(as_text=True)
    assert "active (never asked)" in page and "inactive-reader policy off" in page
    session.execute(update(Reader).where(Reader.id == world.reader_id)
                    .values(engagement_state="paused", engagement_changed_at=utcnow(),
                            frequency="paused"))
    session.commit()
    page = viewer.get(f"/console/readers/{world.reader_id}").get_data(as_text=True)
    assert "paused for inactivity" in page
