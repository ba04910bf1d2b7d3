"""Editors in Chromium: add an article (a validation error first, which keeps
what was typed), preview its card, run a feed through its whole life, read the
reports. The console nav stays on one line at 1280 px and typed text is not bold.
Screenshots in test-artifacts/browser/, the accessibility audit on each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailer.console.editors import create_editor
from mailer.content import articles
from mailer.extensions import db
from mailer.models import Article, Feed
from tests.content.test_feeds import RSS
from tests.support.a11y import audit
from tests.support.feedserver import FeedServer

pytestmark = pytest.mark.browser

PASSWORD = "a long console password"
DESKTOP = {"viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


def test_editor_adds_an_article_and_runs_a_feed(site, chromium, shots, feeds):
    with site.app.app_context():
        create_editor(db.session, "editor@news.example.org", PASSWORD, "editor")
        articles.create_topic(db.session, "transport", "Transport")
        articles.create_topic(db.session, "politics", "Politics")
    context = chromium.new_context(**DESKTOP)
    page = context.new_page()

    def shot(step: str) -> None:
        page.screenshot(path=str(shots / f"{site.stack}-console-{step}.png"), full_page=True)
        problems = audit(page)
        assert problems == [], f"{step}: {problems}"

    page.goto(f"{site.base_url}/console/login")
    page.get_by_label("Email").fill("editor@news.example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    nav_height = page.locator("header.top nav").bounding_box()["height"]
    link_height = page.locator("header.top nav a").first.bounding_box()["height"]
    assert nav_height < 2 * link_height, "the console nav wraps at 1280 px"
    assert page.locator("header.top").bounding_box()["height"] < 72  # one line, with padding

    # Add an article: a bad image address first. The error sits beside its field,
    # in words, and everything typed is still there.
    page.goto(f"{site.base_url}/console/articles")
    page.get_by_role("link", name="Add an article").click()
    page.get_by_role("heading", name="New article").wait_for()
    page.get_by_label("Address (URL)").fill("https://news.example.org/bridge")
    page.get_by_label("Title").fill("Bridge closes for repairs")
    page.get_by_label("Author").fill("Sam Ortiz")
    page.get_by_label("Image URL").fill("javascript:alert(1)")
    page.get_by_label("Summary").fill("Expect delays on the coast road.")
    page.get_by_label("Transport").check()
    weight = page.get_by_label("Title").evaluate("el => getComputedStyle(el).fontWeight")
    assert weight in ("400", "normal"), f"typed text is bold ({weight})"
    page.get_by_role("button", name="Add article").click()
    page.locator("#err-image_url").wait_for()
    assert "Image URL" in page.locator("#err-image_url").inner_text()
    assert page.get_by_label("Image URL").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Title").input_value() == "Bridge closes for repairs"
    assert page.get_by_label("Summary").input_value() == "Expect delays on the coast road."
    assert page.get_by_label("Transport").is_checked()
    shot("1-article-error-kept")
    page.get_by_label("Image URL").fill("https://img.example.org/bridge.jpg")
    page.get_by_role("button", name="Preview card").click()
    page.locator(".card-preview").get_by_text("By Sam Ortiz").wait_for()
    shot("2-article-preview")
    page.get_by_role("button", name="Add article").click()
    page.get_by_text("Article added.").wait_for()
    page.get_by_role("heading", name="Edit article").wait_for()
    shot("3-article-saved")
    with site.app.app_context():
        saved = db.session.query(Article).filter_by(url="https://news.example.org/bridge").one()
        assert saved.author == "Sam Ortiz" and [t.slug for t in saved.topics] == ["transport"]

    # A feed that does not read is refused with the reason, unless the editor insists.
    page.goto(f"{site.base_url}/console/feeds")
    broken = feeds.serve("/broken.xml", "down for maintenance", status=503)
    page.get_by_label("Feed address (URL)").fill(broken)
    page.get_by_role("button", name="Add feed").click()
    page.locator("#err-url").wait_for()
    assert "503" in page.locator("#err-url").inner_text()
    assert page.get_by_label("Feed address (URL)").input_value() == broken
    shot("4-feed-refused")
    with site.app.app_context():
        assert db.session.query(Feed).count() == 0

    # A good feed: read at once, its articles in, then mapping, poll, pause, delete.
    good = feeds.serve("/rss.xml", RSS, etag='"v1"')
    page.get_by_label("Feed address (URL)").fill(good)
    page.get_by_label("Category → topic mapping").fill("Transport = transport")
    page.get_by_role("button", name="Add feed").click()
    page.get_by_text("Feed added: 2 item(s) read, 2 new article(s).").wait_for()
    page.get_by_role("heading", name="Harbour Gazette").wait_for()
    shot("5-feed-added")
    page.get_by_label("Category → topic mapping").fill("Transport = transport\nPolitics = nowhere")
    page.get_by_role("button", name="Save").click()
    page.locator("#err-category_map").wait_for()
    assert "nowhere" in page.locator("#err-category_map").inner_text()
    assert "Politics = nowhere" in page.get_by_label("Category → topic mapping").input_value()
    shot("6-feed-mapping-error")
    page.get_by_label("Category → topic mapping").fill("Transport = transport\nPolitics = politics")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Feed saved.").wait_for()
    page.get_by_role("button", name="Check now").click()
    page.get_by_text("The feed has not changed since the last check.").wait_for()
    page.get_by_role("button", name="Pause").click()
    page.get_by_text("Feed paused").wait_for()
    shot("7-feed-paused")
    page.get_by_role("button", name="Resume").click()
    page.get_by_text("Feed resumed").wait_for()
    page.get_by_role("button", name="Delete feed").click()
    page.get_by_text("Feed deleted.").wait_for()
    with site.app.app_context():
        assert db.session.query(Feed).count() == 0
        assert db.session.query(Article).count() == 3  # its articles stay

    # A digest with a time zone that does not exist: said in words, beside the field.
    page.goto(f"{site.base_url}/console/digests/new")
    page.get_by_label("Name", exact=True).fill("Evening roundup")
    page.get_by_label("Schedule").fill("daily 18:00")
    page.locator("#f-timezone").fill("Mars/Olympus")
    page.get_by_label("Transport").check()
    page.get_by_role("button", name="Create digest").click()
    page.locator("#err-timezone").wait_for()
    assert "Unknown time zone" in page.locator("#err-timezone").inner_text()
    assert "(timezone" not in page.content()
    assert page.get_by_label("Name", exact=True).input_value() == "Evening roundup"
    assert page.get_by_label("Schedule").input_value() == "daily 18:00"
    assert page.get_by_label("Transport").is_checked()
    shot("8-digest-error-kept")
    page.locator("#f-timezone").fill("Europe/Berlin")
    page.get_by_role("button", name="Create digest").click()
    page.get_by_text("Digest 'Evening roundup' created.").wait_for()

    page.goto(f"{site.base_url}/console/reports")
    page.get_by_role("heading", name="Reports").wait_for()
    assert page.get_by_label("Period").input_value() == "7"
    shot("9-reports")

    # The same pages on a phone: nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    for step, path in (("10-mobile-articles-new", "/console/articles/new"),
                       ("11-mobile-feeds", "/console/feeds")):
        page.goto(f"{site.base_url}{path}")
        shot(step)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), step
    context.close()
