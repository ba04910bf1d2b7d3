"""The signup proof of work in Chromium (issue 15), forced on (`always`): the reader
submits at once and the page waits for the answer; the snippet on a page of
another origin solves it without a worker; with JavaScript off the page says so
and keeps the form. Solve times are printed, never asserted (bench/pow.py
measures them)."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.models import ReaderStatus
from tests.browser.test_reader_journey import reader_row
from tests.support.a11y import audit

pytestmark = pytest.mark.browser


@pytest.fixture
def other_origin(site, tmp_path: Path) -> Iterator[str]:
    """A page of the publisher's site (another origin) with the pasted snippet."""
    snippet = site.app.test_client().get("/subscribe/snippet").get_data(as_text=True)
    (tmp_path / "article.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>An article</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        f"<body><h1>An article</h1><p>Text.</p>{snippet}</body></html>")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}/article.html"
    server.shutdown()
    server.server_close()


def test_the_challenge_in_a_real_browser(site, chromium, other_origin):
    rt = site.app.extensions["mailer"]
    rt.settings = dataclasses.replace(rt.settings, signup_challenge="always")
    context = chromium.new_context()
    page = context.new_page()

    # Our form: solved in a worker while the page loads; measured once.
    page.goto(f"{site.base_url}/subscribe")
    page.locator("form[data-challenge-state=done]").wait_for(timeout=15_000)
    form = page.locator("form[data-challenge]")
    solved_ms = int(form.get_attribute("data-challenge-ms"))
    assert form.get_attribute("data-challenge-where") == "worker"  # the CSP lets our worker run
    print(f"\nsolved in {solved_ms} ms at difficulty {rt.settings.signup_challenge_difficulty}")
    assert page.get_by_role("status").first.inner_text() == "Automatic check done."
    assert audit(page) == []

    # Submitting at once: the page waits for the answer, then the signup lands.
    page.goto(f"{site.base_url}/subscribe")
    page.get_by_label("Email address").fill("quick@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for(timeout=15_000)
    assert reader_row(site, "quick@example.org").status == ReaderStatus.PENDING

    # The snippet on a page of another origin: no worker there, the page does the work.
    page.goto(other_origin)
    page.get_by_label("Email address").fill("embedded@example.org")
    page.locator("form[data-challenge-state=done]").wait_for(timeout=15_000)
    assert page.locator("form").get_attribute("data-challenge-where") == "page"
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for(timeout=15_000)
    assert page.url.startswith(site.base_url)
    assert reader_row(site, "embedded@example.org").status == ReaderStatus.PENDING
    context.close()

    # No Web Crypto (a plain http:// page other than localhost): the script's own SHA-256.
    context = chromium.new_context()
    context.add_init_script(
        "Object.defineProperty(Crypto.prototype, 'subtle', {get() { return undefined; }});")
    page = context.new_page()
    page.goto(other_origin)
    assert page.evaluate("crypto.subtle === undefined")
    page.get_by_label("Email address").fill("no-webcrypto@example.org")
    page.locator("form[data-challenge-state=done]").wait_for(timeout=30_000)
    print(f"solved without Web Crypto in {page.locator('form').get_attribute('data-challenge-ms')} ms")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for(timeout=15_000)
    assert reader_row(site, "no-webcrypto@example.org").status == ReaderStatus.PENDING
    context.close()

    # JavaScript off: the page says why the form cannot be sent, and keeps it.
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.base_url}/subscribe")
    assert page.locator(".challenge-noscript").is_visible()
    page.get_by_label("Email address").fill("nojs@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("alert").wait_for()
    assert "needs JavaScript" in page.get_by_role("alert").inner_text()
    assert page.locator(".challenge-noscript").is_visible()
    assert page.get_by_label("Email address").input_value() == "nojs@example.org"
    assert page.get_by_role("link", name="past editions").count() >= 1
    assert audit(page) == []
    context.close()
    with pytest.raises(Exception):  # noqa: B017 - no row for the address
        reader_row(site, "nojs@example.org")
