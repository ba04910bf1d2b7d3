"""Readers who lose a link, sign up twice, want fewer emails, leave, erase their
data and come back; visitors of the archive and of the embeddable signup box.
Chromium against the real stack (app, Celery worker, SMTP server), on both
stacks; screenshots in test-artifacts/browser/, the accessibility audit on each."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import update

from mailer.common.tokens import Purpose
from mailer.extensions import db
from mailer.models import Edition, Frequency, Reader, ReaderEvent, ReaderStatus
from tests.browser.test_reader_journey import VIEWPORTS, link_in, reader_row
from tests.support import processes
from tests.support.a11y import audit

pytestmark = pytest.mark.browser


class Journey:
    def __init__(self, site, chromium, shots, device: str, name: str) -> None:  # type: ignore[no-untyped-def]
        self.site, self.shots, self.device, self.name = site, shots, device, name
        self.context = chromium.new_context(**VIEWPORTS[device])
        self.page = self.context.new_page()

    def shot(self, step: str) -> None:
        """Keep a screenshot, check the page as a screen-reader user meets it, and
        that nothing is wider than the screen."""
        self.page.screenshot(path=str(self.shots / f"{self.site.stack}-{self.device}-{self.name}-{step}.png"),
                             full_page=True)
        problems = audit(self.page)
        assert problems == [], f"{step}: {problems}"
        assert self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), step

    def mails(self, email: str, count: int, what: str):  # type: ignore[no-untyped-def]
        return processes.wait_for(
            lambda: len(self.site.smtp.handler.to(email)) >= count and self.site.smtp.handler.to(email),
            60, what, [self.site.worker])


def forget_link_requests(site, email: str) -> None:  # type: ignore[no-untyped-def]
    """Jump past the ten-minute limit on link emails."""
    with site.app.app_context():
        db.session.execute(update(Reader).where(Reader.email_key == email)
                           .values(link_sent_at=None, confirmation_sent_at=None))
        db.session.commit()


@pytest.mark.parametrize("device", ["desktop", "mobile"])
def test_signup_again_and_ask_for_a_new_link(site, chromium, shots, device):
    j = Journey(site, chromium, shots, device, "relink")
    page, email = j.page, f"lost.{device}@example.org"
    page.goto(f"{site.base_url}/subscribe")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.goto(link_in(j.mails(email, 1, "the confirmation")[0], site.base_url, "/confirm/"))
    page.get_by_role("heading", name="You are subscribed").wait_for()

    # Signing up again while subscribed: the same answer, and an email with the preferences link.
    page.goto(f"{site.base_url}/subscribe")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    j.shot("1-signup-again")
    mail = j.mails(email, 2, "the preferences link email")
    assert "preferences" in mail[1].message["Subject"].lower()
    page.goto(link_in(mail[1], site.base_url, "/preferences/"))
    page.get_by_role("heading", name="Your preferences").wait_for()

    # A broken link is not a dead end: it offers a new one.
    forget_link_requests(site, email)
    page.goto(f"{site.base_url}/preferences/not-a-real-token")
    page.get_by_role("heading", name="This link does not work").wait_for()
    j.shot("2-broken-link")
    page.get_by_role("link", name="Email me a new link").click()
    page.get_by_role("heading", name="Email me a new link").wait_for()
    page.get_by_role("button", name="Email me a new link").click()  # empty: the field says why
    page.locator("#email-error").wait_for()
    assert page.get_by_label("Email address").get_attribute("aria-invalid") == "true"
    j.shot("3-link-form-error")
    page.get_by_label("Email address").fill(email.upper())
    page.get_by_role("button", name="Email me a new link").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    j.shot("4-link-sent")
    mail = j.mails(email, 3, "the new link")
    page.goto(link_in(mail[2], site.base_url, "/preferences/"))
    page.get_by_role("heading", name="Your preferences").wait_for()
    j.shot("5-preferences-from-new-link")
    j.context.close()


def test_unsubscribe_with_retention_choices_erase_and_come_back(site, chromium, shots):
    j = Journey(site, chromium, shots, "desktop", "leave")
    page, email = j.page, "leaving@example.org"
    assert site.api_post("/api/v1/subscribers", {"email": email, "confirmed": True,
                                                 "frequency": "daily"}) == 201
    row = reader_row(site, email)
    reader_id = row.id
    token = site.app.extensions["mailer"].tokens.reader_token(Purpose.UNSUBSCRIBE, reader_id,
                                                              row.token_nonce)
    page.goto(f"{site.base_url}/unsubscribe/{token}")
    page.get_by_role("heading", name="Unsubscribe?").wait_for()
    j.shot("1-unsubscribe-page")

    page.get_by_role("button", name="Pause for 30 days").click()
    page.get_by_role("heading", name="Your digest is paused").wait_for()
    j.shot("2-paused")
    row = reader_row(site, email)
    assert row.status == ReaderStatus.CONFIRMED and row.frequency == Frequency.PAUSED
    assert row.paused_until is not None and row.resume_frequency == Frequency.DAILY

    page.get_by_role("link", name="Unsubscribe after all").click()
    page.get_by_role("button", name="Switch to weekly").click()
    page.get_by_role("heading", name="You get a weekly digest now").wait_for()
    assert reader_row(site, email).frequency == Frequency.WEEKLY

    page.get_by_role("link", name="Unsubscribe after all").click()
    page.get_by_label("Too many emails").check()
    page.get_by_label("Anything else you want to tell us?").fill("Lovely, but I read the site.")
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    j.shot("3-unsubscribed")
    assert reader_row(site, email).status == ReaderStatus.UNSUBSCRIBED
    with site.app.app_context():
        event = db.session.query(ReaderEvent).filter_by(kind="unsubscribed").one()
        assert event.detail["reason"] == "too-many" and "read the site" in event.detail["comment"]

    # The way back leads to the preferences; this reader erases everything instead.
    page.get_by_role("link", name="Subscribe again").click()
    page.get_by_role("heading", name="Your preferences").wait_for()
    page.get_by_label("Delete my subscription and all my data for good").check()
    page.get_by_role("button", name="Delete my data").click()
    page.get_by_role("heading", name="Your data is deleted").wait_for()

    # ...and later opts in again through the form: double opt-in works, nothing else does.
    assert site.api_post("/api/v1/subscribers", {"email": email, "confirmed": True}) < 500
    with site.app.app_context():
        assert db.session.query(Reader).filter_by(email_key=email).count() == 0
    page.goto(f"{site.base_url}/subscribe")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    mail = j.mails(email, 1, "the confirmation after erasure")
    page.goto(link_in(mail[0], site.base_url, "/confirm/"))
    page.get_by_role("heading", name="You are subscribed").wait_for()
    j.shot("4-back-after-erasure")
    assert reader_row(site, email).status == ReaderStatus.CONFIRMED
    j.context.close()


def wait_edition_done(site, edition_id: int) -> None:  # type: ignore[no-untyped-def]
    def done() -> bool:
        with site.app.app_context():
            db.session.expire_all()
            return db.session.get(Edition, edition_id).status == "done"
    processes.wait_for(done, 90, "the edition to finish", [site.worker])


@pytest.mark.parametrize("device", ["desktop", "mobile"])
def test_archive_is_a_growth_page_and_the_snippet_subscribes(site, chromium, shots, device):
    j = Journey(site, chromium, shots, device, "archive")
    page = j.page
    assert site.api_post("/api/v1/topics", {"slug": "harbour", "name": "Harbour"}) == 201
    assert site.api_post("/api/v1/articles", {
        "url": "https://news.example.org/harbour", "title": "Harbour reopens after the storm",
        "summary": "Boats are back.", "author": "Kim Lee", "topics": ["harbour"],
        "image_url": "https://img.example.org/harbour.jpg"}) == 201
    assert site.api_post("/api/v1/digests", {"name": "Morning", "topics": ["harbour"]}) == 201
    assert site.api_post("/api/v1/subscribers", {"email": "reader@example.org", "confirmed": True}) == 201
    client = site.app.test_client()
    r = client.post("/api/v1/editions", json={"digest": "Morning"},
                    headers={"Authorization": "Bearer browser-token"})
    assert r.status_code == 202, r.get_data(as_text=True)
    edition_id = r.get_json()["id"]
    wait_edition_done(site, edition_id)

    page.goto(f"{site.base_url}/archive")
    page.get_by_role("heading", name="Past editions").wait_for()
    j.shot("1-archive")
    page.locator(f'a[href="/archive/{edition_id}"]').click()
    page.locator("iframe.edition").wait_for()
    time.sleep(0.5)  # the frame sizes itself on load
    j.shot("2-edition")
    og = {p: page.locator(f'meta[property="og:{p}"]').get_attribute("content")
          for p in ("title", "description", "url", "image")}
    assert og["url"] == f"{site.base_url}/archive/{edition_id}"
    assert "Harbour reopens" in og["description"] and og["image"].endswith("harbour.jpg")
    assert page.title() and page.locator('meta[name="description"]').count() == 1
    page.get_by_label("Email address").fill(f"visitor.{device}@example.org")
    page.get_by_role("button", name="Subscribe").first.click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    j.mails(f"visitor.{device}@example.org", 1, "the archive signup's confirmation")

    # The signup box for other sites: a preview, a copy button, one-step signup.
    page.goto(f"{site.base_url}/subscribe/snippet/preview")
    page.get_by_role("heading", name="Signup box for your site").wait_for()
    j.shot("3-snippet-preview")
    j.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy the code").click()
    page.wait_for_function("document.getElementById('copy-status').textContent.length > 0")
    assert re.search(r"Copied|Selected", page.locator("#copy-status").inner_text())
    if "Copied" in page.locator("#copy-status").inner_text():
        assert "newsletter-signup" in page.evaluate("navigator.clipboard.readText()")
    page.locator(".snippet-live").get_by_label("Email address").fill(f"embed.{device}@example.org")
    page.locator(".snippet-live").get_by_label("Harbour").check()
    page.locator(".snippet-live").get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    mail = j.mails(f"embed.{device}@example.org", 1, "the snippet signup's confirmation")
    page.goto(link_in(mail[0], site.base_url, "/confirm/"))
    page.get_by_role("heading", name="You are subscribed").wait_for()
    assert [t.slug for t in reader_row(site, f"embed.{device}@example.org").topics] == ["harbour"]
    j.context.close()
