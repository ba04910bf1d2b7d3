"""An admin brands the publication, an editor sends with confirmation, and the
digest email arrives branded: Chromium at desktop and phone widths, the email at
600 and 375 px. Screenshots go to test-artifacts/browser/; every screenshotted
page passes the accessibility audit."""

from __future__ import annotations

import functools
import http.server
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailer import editions
from mailer.console.editors import create_editor
from mailer.content import articles, find_digest, save_digest
from mailer.extensions import db
from mailer.models import utcnow
from mailer.readers import subscriptions
from tests.support import processes
from tests.support.a11y import audit
from tests.support.smtp import free_port

pytestmark = pytest.mark.browser

PASSWORD = "a long console password"
READERS = 5


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain-colour PNG, so the email's images load without the internet."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b""))


@pytest.fixture
def images(tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "hero.png").write_bytes(_png(1200, 600, (32, 84, 120)))
    (folder / "logo.png").write_bytes(_png(240, 48, (11, 61, 145)))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _seed(site, images: str) -> None:
    with site.app.app_context():
        create_editor(db.session, "admin@news.example.org", PASSWORD, "admin")
        for slug, name in (("harbour", "Harbour"), ("culture", "Culture")):
            articles.create_topic(db.session, slug, name)
        stories = [
            ("harbour", "Ferry timetable changes for the winter season", "Maren Holt", True),
            ("harbour", "Volunteers restore the old lighthouse keeper's cottage", "Tomas Berg", False),
            ("culture", "Choir festival fills the harbour church three nights running", "Ada Quayle", False),
            ("culture", "Painters return to the quay for the autumn light", "", False),
        ]
        for n, (topic, title, author, hero) in enumerate(stories):
            articles.upsert_article(db.session, {
                "url": f"https://news.example.org/{topic}/{n}", "title": title, "author": author,
                "summary": f"{title}: what happened, who it affects and what comes next.",
                "image_url": f"{images}/hero.png" if hero else "", "topics": [topic],
                "published_at": (utcnow() - timedelta(hours=n + 1)).isoformat()})
        save_digest(db.session, {"name": "Harbour Daily", "topics": ["harbour", "culture"],
                                 "intro": "Good morning. The ferries change, the choirs sing.",
                                 "section_order": ["culture", "harbour"]})
        for n in range(READERS):
            subscriptions.subscribe(db.session, email=f"reader{n}@example.org", name=f"Reader {n}",
                                    topics=["harbour", "culture"], source="import", confirmed=True)
        db.session.remove()


def test_branding_send_with_confirmation_and_the_email_at_two_widths(site, chromium, shots, images):
    from playwright.sync_api import expect

    _seed(site, images)
    prefix = f"{site.stack}-publication"
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)

    def shot(target, name: str, full: bool = True) -> None:
        target.screenshot(path=str(shots / f"{prefix}-{name}.png"), full_page=full)
        assert audit(target) == [], f"{name}: {audit(target)}"

    page.goto(f"{site.base_url}/console/login")
    page.fill('input[name="email"]', "admin@news.example.org")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.goto(f"{site.base_url}/console/settings")

    # A bad colour comes back beside its field, with everything typed kept.
    page.get_by_label("Publication name").fill("Harbour Herald")
    page.get_by_label("Website URL").fill("https://herald.example.org")
    page.get_by_label("Logo URL").fill(f"{images}/logo.png")
    page.get_by_label("Accent colour").fill("navy")
    page.get_by_label("Language").fill("en-GB")
    page.get_by_label("From display name").fill("The Harbour Herald")
    page.get_by_label("Postal address").fill("1 Quay Street\nPortsmouth PO1 2AB")
    page.get_by_role("button", name="Save publication settings").click()
    expect(page.locator("#pub-accent_color-error")).to_contain_text("#rrggbb")
    assert page.get_by_label("Publication name").input_value() == "Harbour Herald"
    shot(page, "1-settings-error")
    page.get_by_label("Accent colour").fill("#0b3d91")
    page.get_by_role("button", name="Save publication settings").click()
    expect(page.locator(".flash")).to_contain_text("Publication settings saved")

    # Reader pages carry the brand at both widths.
    for device, viewport in (("desktop", {"width": 1280, "height": 900}),
                             ("mobile", {"width": 390, "height": 844})):
        reader = chromium.new_page(viewport=viewport)
        reader.goto(f"{site.base_url}/subscribe")
        assert reader.locator("html").get_attribute("lang") == "en-GB"
        brand = reader.locator("header.masthead a.brand")
        expect(brand).to_contain_text("Harbour Herald")
        assert brand.get_attribute("href") == "https://herald.example.org"
        expect(reader.locator("footer.site address")).to_contain_text("1 Quay Street")
        assert reader.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        shot(reader, f"2-subscribe-{device}")
        reader.close()

    # Send now asks first: how many readers, and a last test send.
    page.goto(f"{site.base_url}/console/digests")
    page.click("text=Harbour Daily")
    page.click('a:has-text("Send now")')
    expect(page.locator('#send-plan [data-field="readers"]')).to_have_text(str(READERS))
    page.get_by_label("Addresses (comma separated)").fill("desk@example.org")
    page.get_by_role("button", name="Send a test").click()
    expect(page.locator(".flash")).to_contain_text("Test sent: 1 of 1")
    expect(page.locator('#send-plan [data-field="readers"]')).to_have_text(str(READERS))
    shot(page, "3-send-confirm")
    page.click(f'button:has-text("Send to {READERS} readers")')
    expect(page.locator("h1")).to_contain_text("Edition #")
    expect(page.locator('#progress [data-field="status"]')).to_have_text("done", timeout=60_000)
    edition_id = int(re.search(r"/editions/(\d+)", page.url).group(1))

    mail = processes.wait_for(lambda: site.smtp.handler.to("reader0@example.org"), 60,
                              "the digest", [site.worker])
    msg = mail[0].message
    assert str(msg["From"]) == "The Harbour Herald <news@mailer.test>"
    assert len(str(msg["Subject"])) <= 60
    html = msg.get_body(("html",)).get_content()
    assert '<html lang="en-GB"' in html and "Portsmouth PO1 2AB" in html
    assert len(mail[0].data) < 45_000

    # The email itself at 600 and 375 px: lead with its hero image, sections in order.
    for width in (600, 375):
        view = chromium.new_page(viewport={"width": width, "height": 900})
        view.set_content(html, wait_until="load")
        assert view.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        hero = view.locator(f'img[src="{images}/hero.png"]')
        expect(hero).to_be_visible()
        assert hero.bounding_box()["width"] >= min(width, 600) - 2  # full width
        sections = [t.strip().lower() for t in view.locator("h2").all_inner_texts()]
        assert sections == ["culture", "harbour"]  # the digest's section order
        assert "Read the story" in view.locator("body").inner_text()
        expect(view.locator("h1")).to_contain_text("Ferry timetable changes")
        shot(view, f"4-email-{width}")
        if width == 375:  # dark mode: the reader's client asks for it, the email follows
            view.emulate_media(color_scheme="dark")
            assert view.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(18, 18, 18)"
            shot(view, f"4-email-{width}-dark")
        view.close()

    # The archive copy: branded, and nobody's personal email.
    page.goto(f"{site.base_url}/archive/{edition_id}")
    body = page.locator("body").inner_text()
    assert "Harbour Herald" in body and "Hello" not in body and "subscribed as" not in body
    page.screenshot(path=str(shots / f"{prefix}-5-archive.png"), full_page=True)

    # A draft of the next edition: the editor makes another story the lead and drops one.
    with site.app.app_context():
        articles.upsert_article(db.session, {
            "url": "https://news.example.org/harbour/new-1", "title": "Harbour master retires",
            "summary": "After 31 years.", "topics": ["harbour"]})
        articles.upsert_article(db.session, {
            "url": "https://news.example.org/culture/new-2", "title": "Film club opens in the old cinema",
            "summary": "Fridays at eight.", "topics": ["culture"]})
        digest = find_digest(db.session, "Harbour Daily")
        digest.approval = "draft"
        db.session.commit()
        draft = editions.start_edition(db.session, digest.id, slot="2026-11-30T07:00Z")
        draft_id = draft.id
        db.session.remove()
    page.goto(f"{site.base_url}/console/editions/{draft_id}/stories")
    items = page.locator("ol.stories > li")
    expect(items.first).to_contain_text("Film club opens")
    page.get_by_role("button", name="Make lead: Harbour master retires").click()
    expect(items.first).to_contain_text("Harbour master retires")
    expect(items.first.locator(".lead-badge")).to_have_text("Lead")
    page.get_by_role("button", name="Drop: Film club opens in the old cinema").click()
    expect(page.locator("[data-dropped]")).to_contain_text("Film club opens")
    expect(page.frame_locator("iframe.draft-preview").locator("h1")).to_contain_text(
        "Harbour master retires")
    shot(page, "6-draft-stories")
