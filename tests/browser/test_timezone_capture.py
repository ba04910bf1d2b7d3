"""The reader's time zone comes from the browser at signup (Chromium with a set
zone): the subscribe form and the embeddable box fill their hidden field by script;
the preference centre shows and changes it."""

from __future__ import annotations

import pytest

from mailer.common.tokens import Purpose
from mailer.extensions import db
from mailer.models import Reader
from mailer.readers import reader_link_token
from mailer.runtime import runtime
from tests.support.a11y import audit

pytestmark = pytest.mark.browser


def zone_of(site, email: str) -> str:
    with site.app.app_context():
        db.session.expire_all()
        return db.session.query(Reader.timezone).filter_by(email_key=email).scalar()


def test_browser_zone_captured_at_signup_and_editable(site, chromium, shots):
    context = chromium.new_context(timezone_id="Asia/Kathmandu")
    page = context.new_page()
    page.goto(f"{site.base_url}/subscribe")
    page.get_by_label("Email address").fill("kathmandu@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert zone_of(site, "kathmandu@example.org") == "Asia/Kathmandu"
    context.close()

    # The signup box for other sites, as shown on its preview page.
    context = chromium.new_context(timezone_id="America/New_York")
    page = context.new_page()
    page.goto(f"{site.base_url}/subscribe/snippet/preview")
    box = page.locator(".snippet-live")
    box.get_by_label("Email address").fill("newyork@example.org")
    box.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert zone_of(site, "newyork@example.org") == "America/New_York"

    # The preference centre: the zone is shown and can be changed.
    with site.app.app_context():
        reader = db.session.query(Reader).filter_by(email_key="newyork@example.org").one()
        token = reader_link_token(runtime().tokens, Purpose.PREFERENCES, reader)
        db.session.execute(db.update(Reader).where(Reader.id == reader.id)
                           .values(status="confirmed"))
        db.session.commit()
    page.goto(f"{site.base_url}/preferences/{token}")
    zone = page.get_by_label("Your time zone")
    assert zone.input_value() == "America/New_York"
    assert audit(page) == [], audit(page)
    page.screenshot(path=str(shots / f"{site.stack}-preferences-timezone.png"), full_page=True)
    zone.select_option("Europe/London")
    page.get_by_role("button", name="Save preferences").click()
    page.get_by_text("Your preferences are saved.").wait_for()
    assert zone_of(site, "newyork@example.org") == "Europe/London"
    context.close()
