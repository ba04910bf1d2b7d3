"""A reader's whole journey in Chromium, on a desktop and a phone-sized viewport:
subscribe, confirm from the received email, change preferences, unsubscribe,
come back (re-confirming). Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from mailer.extensions import db
from mailer.models import Reader, ReaderStatus
from tests.support import processes
from tests.support.a11y import audit

pytestmark = pytest.mark.browser

VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "mobile": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
               "device_scale_factor": 2},
}


def link_in(received, base_url: str, path: str) -> str:
    text = received.message.get_body(("plain",)).get_content()
    return re.search(re.escape(base_url) + re.escape(path) + r"\S+", text).group(0)


def reader_row(site, email: str) -> Reader:
    with site.app.app_context():
        db.session.expire_all()
        row = db.session.query(Reader).filter_by(email_key=email.lower()).one()
        db.session.expunge(row)
        return row


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_subscribe_confirm_prefs_unsubscribe_resubscribe(site, chromium, shots, device):
    assert site.api_post("/api/v1/topics", {"slug": "harbour", "name": "Harbour"}) == 201
    assert site.api_post("/api/v1/topics", {"slug": "culture", "name": "Culture"}) == 201
    email = f"ada.{device}@example.org"
    context = chromium.new_context(**VIEWPORTS[device])
    page = context.new_page()

    def shot(name: str) -> None:
        """Keep a screenshot, and check the page as a screen-reader user would meet it."""
        page.screenshot(path=str(shots / f"{site.stack}-{device}-{name}.png"), full_page=True)
        assert audit(page) == [], f"{name}: {audit(page)}"

    def fits() -> None:  # nothing wider than the screen: no sideways scrolling
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    # Subscribe through the form, using its labels as a screen reader would.
    page.goto(f"{site.base_url}/subscribe")
    assert page.locator("html").get_attribute("lang") == "en"
    fits()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Harbour").check()
    page.get_by_label("How often").select_option("daily")
    shot("1-subscribe")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    shot("2-check-inbox")

    # The worker process sends the confirmation email; its link confirms.
    mail = processes.wait_for(lambda: site.smtp.handler.to(email), 60, "the confirmation email",
                              [site.worker])
    assert len(mail) == 1
    page.goto(link_in(mail[0], site.base_url, "/confirm/"))
    page.get_by_role("heading", name="You are subscribed").wait_for()
    shot("3-confirmed")
    assert reader_row(site, email).status == ReaderStatus.CONFIRMED

    # Preferences: another topic, weekly, a new name.
    page.get_by_role("link", name="Choose topics and frequency").click()
    page.get_by_role("heading", name="Your preferences").wait_for()
    fits()
    page.get_by_label("Culture").check()
    page.get_by_label("How often").select_option("weekly")
    page.get_by_label("Name", exact=True).fill("Ada L.")
    page.get_by_role("button", name="Save preferences").click()
    page.get_by_text("Your preferences are saved.").wait_for()
    shot("4-preferences-saved")
    row = reader_row(site, email)
    assert (row.frequency, row.name) == ("weekly", "Ada L.")
    assert sorted(t.slug for t in row.topics) == ["culture", "harbour"]

    # Unsubscribe: the GET page only shows a button; the click unsubscribes.
    page.get_by_role("link", name="unsubscribe").click()
    page.get_by_role("heading", name="Unsubscribe?").wait_for()
    assert reader_row(site, email).status == ReaderStatus.CONFIRMED
    shot("5-unsubscribe-page")
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    assert reader_row(site, email).status == ReaderStatus.UNSUBSCRIBED
    shot("6-unsubscribed")

    # Come back an hour later (one confirmation email per hour at most): re-confirm.
    with site.app.app_context():
        db.session.execute(update(Reader).where(Reader.email_key == email).values(confirmation_sent_at=None))
        db.session.commit()
    page.get_by_role("link", name="Subscribe again").click()
    page.get_by_role("button", name="Subscribe again").click()
    page.get_by_text("We sent you a new confirmation link.").wait_for()
    shot("7-resubscribe-requested")
    assert reader_row(site, email).status == ReaderStatus.PENDING
    mail = processes.wait_for(lambda: len(site.smtp.handler.to(email)) == 2 and site.smtp.handler.to(email),
                              60, "the second confirmation email", [site.worker])
    page.goto(link_in(mail[1], site.base_url, "/confirm/"))
    page.get_by_role("heading", name="You are subscribed").wait_for()
    shot("8-reconfirmed")
    row = reader_row(site, email)
    assert row.status == ReaderStatus.CONFIRMED and row.frequency == "weekly"
    context.close()
