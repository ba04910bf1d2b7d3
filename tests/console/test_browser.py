"""The console in Chromium against a real stack: gunicorn, a Celery worker
process, an aiosmtpd server, the embedded database and broker.

Log in, create a digest, preview it, test send, send, pause and resume while the
live progress bar moves, watch it reach the end, find a reader and their history.
Screenshots go to test-artifacts/console/.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer import create_app
from mailer.console.editors import create_editor
from mailer.content import articles
from mailer.extensions import db
from mailer.readers import subscriptions
from tests.support import processes, services
from tests.support.a11y import audit
from tests.support.smtp import SmtpServer, free_port

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
READERS = 400
PASSWORD = "a long console password"


class Site:
    def __init__(self, name: str, base: str, smtp: SmtpServer, procs: list[processes.Proc],
                 shots: Path) -> None:
        self.name, self.base, self.smtp, self.procs, self.shots = name, base, smtp, procs, shots


@pytest.fixture(params=["embedded", "postgres-redis"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    shots = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
    shots.mkdir(parents=True, exist_ok=True)
    instance = tmp_path / "instance"
    port = free_port()
    with SmtpServer() as smtp:
        settings = {
            "MAILER_INSTANCE_PATH": str(instance),
            "MAILER_SECRET_KEY": "browser-secret",
            "MAILER_BASE_URL": f"http://127.0.0.1:{port}",
            "MAILER_FROM": "Harbour News <news@mailer.test>",
            "MAILER_SMTP_URL": smtp.url,
            "MAILER_QUEUE": f"console-{uuid.uuid4().hex[:8]}",
            "MAILER_SEND_RATE": "20",  # per worker process: slow enough to pause mid-way
            "MAILER_BATCH_SIZE": "20",
            "MAILER_TRACKING": "1",
            # the test opens a message seconds after sending it: not a prefetch here
            "MAILER_MACHINE_OPEN_SECONDS": "0",
        }
        overrides: dict[str, object] = {}
        if request.param == "postgres-redis":
            services.require("postgres")
            services.require("redis")
            settings["MAILER_DATABASE_URL"] = overrides["database_url"] = services.create_pg_database()
            settings["MAILER_BROKER_URL"] = overrides["broker_url"] = services.REDIS_URL
        env = processes.environment(settings)
        release = processes.flask(env, "db", "upgrade")
        assert release.returncode == 0, release.stderr
        app = create_app(ratelimit=False, instance_path=instance, secret_key="browser-secret", smtp_url=smtp.url,
                         queue_name=settings["MAILER_QUEUE"], base_url=settings["MAILER_BASE_URL"],
                         machine_open_seconds=0.0, **overrides)
        with app.app_context():
            create_editor(db.session, "editor@news.example.org", PASSWORD, "editor")
            topic = articles.create_topic(db.session, "harbour", "Harbour")
            for n in range(3):
                articles.upsert_article(db.session, {
                    "url": f"https://news.example.org/harbour/{n}", "title": f"Harbour story {n}",
                    "summary": f"What happened at the harbour, part {n}.", "topics": [topic.slug]})
            for n in range(READERS):
                subscriptions.subscribe(db.session, email=f"reader{n}@example.org", name=f"Reader {n}",
                                        topics=["harbour"], source="import", confirmed=True)
            db.session.remove()
            db.engine.dispose()
        procs = [processes.Proc("web", [str(processes.BIN / "gunicorn"), "--no-control-socket",
                                        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4",
                                        "mailer:create_app()"], env, tmp_path),
                 processes.start_worker(env, tmp_path, "worker", concurrency=2)]
        try:
            processes.wait_for(lambda: _up(f"http://127.0.0.1:{port}/healthz"), 30, "gunicorn", procs)
            yield Site(request.param, f"http://127.0.0.1:{port}", smtp, procs, shots)
        finally:
            for proc in procs:
                proc.kill()
            if "database_url" in overrides:
                services.drop_pg_database(str(overrides["database_url"]))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
            return r.status == 200
    except OSError:
        return False


def _settled(page) -> int:  # type: ignore[no-untyped-def]
    """The sent count once it stops changing (in-flight batches of a paused edition end)."""
    last = -1
    for _ in range(40):
        now = _field(page, "sent")
        if now == last:
            return now
        last = now
        time.sleep(1.5)
    raise AssertionError("the sent count kept moving after pause")


def _field(page, name: str) -> int:  # type: ignore[no-untyped-def]
    text = page.locator(f'#progress [data-field="{name}"]').inner_text()
    return int(text) if text.isdigit() else -1


def test_console_main_flow(site: Site, chromium) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    browser = chromium
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)

    # Log in.
    page.goto(f"{site.base}/console/readers")
    assert "/console/login" in page.url
    page.fill('input[name="email"]', "editor@news.example.org")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    expect(page.locator("h1")).to_have_text("Readers")
    page.goto(f"{site.base}/console/")
    expect(page.locator("svg.chart").first).to_be_visible()
    page.screenshot(path=str(site.shots / f"{site.name}-01-dashboard.png"), full_page=True)
    assert audit(page) == [], "01-dashboard: " + str(audit(page))

    # Create a digest.
    page.click("text=Digests")
    page.click("text=New digest")
    page.fill('input[name="name"]', "Harbour Daily")
    page.fill('input[name="schedule"]', "daily 07:00")
    page.fill('input[name="timezone"]', "Europe/Berlin")
    page.check('input[name="topics"][value="harbour"]')
    page.click('form.card button[type="submit"]')
    expect(page.locator(".flash")).to_contain_text("created")
    page.screenshot(path=str(site.shots / f"{site.name}-02-digest.png"), full_page=True)
    assert audit(page) == [], "02-digest: " + str(audit(page))

    # Preview: desktop, mobile and text in sandboxed frames.
    page.click("text=Preview and test send")
    for frame_class in ("desktop", "mobile"):
        frame = page.frame_locator(f"iframe.{frame_class}")
        expect(frame.locator("body")).to_contain_text("Harbour story 0")
    expect(page.frame_locator("iframe.text").locator("body")).to_contain_text("Harbour story 2")
    page.wait_for_load_state("networkidle")
    page.set_viewport_size({"width": 1280, "height": 1900})  # frames laid out at their size
    page.screenshot(path=str(site.shots / f"{site.name}-03-preview.png"))
    assert audit(page) == [], "03-preview: " + str(audit(page))
    page.set_viewport_size({"width": 1280, "height": 900})

    # Test send through the real SMTP server.
    page.fill('input[name="addresses"]', "desk@example.org")
    page.click("text=Send test")
    expect(page.locator(".flash")).to_contain_text("Test sent: 1 of 1")
    test_mail = site.smtp.handler.to("desk@example.org")
    assert len(test_mail) == 1 and str(test_mail[0].message["Subject"]).startswith("[Test]")

    # Send now asks first, with the number of readers it will reach.
    page.goto(page.url.split("/preview")[0])
    page.click('a:has-text("Send now")')
    expect(page.locator('#send-plan [data-field="readers"]')).to_have_text(f"{READERS:,}")
    page.screenshot(path=str(site.shots / f"{site.name}-04a-send-confirm.png"), full_page=True)
    assert audit(page) == [], "04a-send-confirm: " + str(audit(page))
    # The edition page's bar moves without a reload.
    page.click(f'button:has-text("Send to {READERS:,} readers")')
    expect(page.locator("h1")).to_contain_text("Edition #")
    edition_url = page.url
    page.wait_for_function(
        "() => Number(document.querySelector('#progress [data-field=sent]').textContent) >= 20")
    page.screenshot(path=str(site.shots / f"{site.name}-04-sending.png"), full_page=True)
    assert audit(page) == [], "04-sending: " + str(audit(page))

    # Pause, check it holds, resume.
    page.click('button:has-text("Pause")')
    expect(page.locator('#progress [data-field="status"]')).to_have_text("paused")
    held = _settled(page)  # batches already claimed finish; then nothing moves
    assert held < READERS
    time.sleep(2)
    assert _field(page, "sent") == held
    page.screenshot(path=str(site.shots / f"{site.name}-05-paused.png"), full_page=True)
    assert audit(page) == [], "05-paused: " + str(audit(page))
    page.click('button:has-text("Resume")')
    expect(page.locator('#progress [data-field="status"]')).to_have_text("sending")

    # The bar reaches the end by polling alone.
    expect(page.locator('#progress [data-field="status"]')).to_have_text("done", timeout=90_000)
    assert page.url == edition_url
    assert _field(page, "sent") == READERS and _field(page, "remaining") == 0
    expect(page.locator("#progress .bar .fill")).to_have_attribute("style", re.compile("100"))
    page.screenshot(path=str(site.shots / f"{site.name}-06-done.png"), full_page=True)
    assert audit(page) == [], "06-done: " + str(audit(page))
    received = [m.rcpt for m in site.smtp.handler.messages if m.rcpt.startswith("reader")]
    assert len(received) == len(set(received)) == READERS

    # Tracking through the delivered message: its pixel and a link, fetched like a mail client.
    html = next(m for m in site.smtp.handler.messages if m.rcpt == "reader3@example.org"
                ).message.get_body(("html",)).get_content()
    pixel = re.search(r'src="(http://127\.0\.0\.1:\d+/t/o/[^"]+)"', html).group(1)
    # the lead story's "Read the story" link (the masthead links to the site itself)
    click = re.search(r'href="(http://127\.0\.0\.1:\d+/t/c/[^"]+)"[^>]*>Read the story', html).group(1)
    agent = {"User-Agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Mail"}
    with urllib.request.urlopen(urllib.request.Request(pixel, headers=agent)) as r:  # noqa: S310
        assert r.headers["Content-Type"] == "image/gif"
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(urllib.request.Request(click, headers=agent))
        raise AssertionError("no redirect")
    except urllib.error.HTTPError as exc:
        assert exc.code == 302 and exc.headers["Location"].startswith("https://news.example.org/")
    page.reload()
    expect(page.locator("section.card >> text=Opens (people)")).to_be_visible()
    assert "1 (0.2%)" in page.locator("section.card").nth(1).inner_text()

    # Find a reader and see their history.
    page.click("text=Readers")
    page.fill('input[name="q"]', "reader17@")
    page.click('form.filters button[type="submit"]')
    page.click("text=reader17@example.org")
    expect(page.locator("table.history")).to_contain_text("sent")
    expect(page.locator("table.history")).to_contain_text("Edition #")
    page.screenshot(path=str(site.shots / f"{site.name}-07-reader.png"), full_page=True)
    assert audit(page) == [], "07-reader: " + str(audit(page))

    # Mobile width.
    mobile = browser.new_page(viewport={"width": 390, "height": 844})
    mobile.context.add_cookies(page.context.cookies())
    mobile.goto(edition_url)
    mobile.screenshot(path=str(site.shots / f"{site.name}-08-edition-mobile.png"), full_page=True)
    assert audit(mobile) == [], "08-edition-mobile: " + str(audit(mobile))
