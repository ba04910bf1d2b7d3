"""The digest preview in real Chromium at desktop and mobile widths."""

from __future__ import annotations

import pytest

from mailer.editions import previews
from tests.support import factories

pytestmark = pytest.mark.browser

@pytest.mark.parametrize("width", ["desktop", "mobile"])
def test_preview_fits_its_width(session, rt, chromium, artifacts, width, backend_url):
    if not backend_url.startswith("sqlite"):
        pytest.skip("rendering does not depend on the database; once is enough")
    t = factories.topic(session, "local")
    for n in range(6):
        a = factories.article(session, topics=[t], title=f"Harbour story number {n} with a longer headline")
        a.image_url = "" if n % 2 else "https://img.example.org/none.jpg"
    session.commit()
    d = factories.digest(session, "Daily", topics=[t])
    preview = previews.preview_digest(session, rt.settings, d.id)
    pixels = previews.WIDTHS[width]

    page = chromium.new_page(viewport={"width": pixels, "height": 900})
    page.route("https://img.example.org/**", lambda route: route.abort())  # no network
    page.set_content(preview.html)
    assert page.evaluate("document.documentElement.scrollWidth") <= pixels
    assert "Harbour story number 0" in page.inner_text("body")
    page.screenshot(path=str(artifacts / f"digest-preview-{width}.png"), full_page=True)

    frame_page = chromium.new_page(viewport={"width": 1000, "height": 900})
    frame_page.set_content(previews.preview_page(preview, width))
    frame = frame_page.frame_locator("iframe")
    assert "Harbour story number 5" in frame.locator("body").inner_text()
    box = frame_page.locator("iframe").bounding_box()
    assert round(box["width"]) == pixels
    frame_page.screenshot(path=str(artifacts / f"digest-preview-page-{width}.png"))
    page.close()
    frame_page.close()
