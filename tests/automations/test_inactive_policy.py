"""The inactive-reader policy end to end: one re-engagement email over real SMTP,
a pause after the grace period, "keep me subscribed" (GET page, POST with CSRF),
never a second email, and bad links answered with a way forward."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mailer import automations
from mailer.common import Purpose
from mailer.mail.senders import make_sender
from mailer.models import (
    Automation,
    AutomationDelivery,
    Delivery,
    Edition,
    EngagementState,
    Frequency,
    Reader,
    ReaderEvent,
    utcnow,
)
from mailer.readers import update_preferences
from tests.console.world import send_edition
from tests.support import factories
from tests.support.smtp import SmtpServer
from tests.web.conftest import csrf_from

LONG_AGO = timedelta(days=200)


def _policy(rt, **changes):  # type: ignore[no-untyped-def]
    values = {"inactive_months": 3, "inactive_grace_days": 14, "inactive_min_digests": 2}
    return replace(rt.settings, **{**values, **changes})


def _world(session, rt, tracking: bool = True) -> dict[str, Reader]:  # type: ignore[no-untyped-def]
    """Three readers who joined long ago and got two digests a month ago: ada opened
    one as a person; bob's only opens are Apple's proxy; cy never opened."""
    topic = factories.topic(session, "local", "Local")
    readers = {name: factories.reader(session, f"{name}@example.org", topics=[topic], name=name)
               for name in ("ada", "bob", "cy")}
    digest = factories.digest(session, "Morning", topics=[topic])
    editions = []
    for n in range(2):
        factories.article(session, topics=[topic], title=f"Story {n}",
                          published_at=utcnow() - timedelta(seconds=1))
        editions.append(send_edition(session, rt, digest.id, tracking=tracking))
        # the next story is news to the digest only after this edition
        session.execute(update(Edition).where(Edition.id == editions[-1])
                        .values(created_at=utcnow() - timedelta(hours=2 - n)))
    month_ago = utcnow() - timedelta(days=30)
    session.execute(update(Reader).values(created_at=utcnow() - LONG_AGO,
                                          confirmed_at=utcnow() - LONG_AGO))
    session.execute(update(Delivery).values(sent_at=month_ago))
    session.add(ReaderEvent(reader_id=readers["ada"].id, edition_id=editions[0], kind="open",
                            created_at=month_ago + timedelta(hours=2)))
    session.add(ReaderEvent(reader_id=readers["bob"].id, edition_id=editions[0], kind="open-machine",
                            detail={"reason": "apple-mpp-agent"}, created_at=month_ago))
    session.commit()
    return readers


def _keep_link(raw: bytes) -> str:
    from email import message_from_bytes, policy

    msg = message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"http://mailer\.test(/keep/[A-Za-z0-9_.-]+)", text)
    assert link is not None and link.group(1) in html
    return link.group(1)


def _state(session, reader: Reader) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    session.expire_all()
    row = session.get(Reader, reader.id)
    return row.engagement_state, row.frequency


def test_policy_end_to_end_over_real_smtp(session, rt, sender, client, dispatch):
    readers = _world(session, rt)
    settings = _policy(rt)
    now = utcnow()
    report = automations.scan_inactive(session, settings, now=now)
    assert (report.asked, report.paused) == (2, 0)  # bob and cy; ada opened as a person
    assert _state(session, readers["ada"])[0] == EngagementState.NONE
    with SmtpServer() as smtp:
        real = make_sender(smtp.url, rt.settings.outbox_path)
        sent = automations.send_due_automations(session, settings, rt.tokens, real)
        assert sent.sent == 2
        assert sorted(m.rcpt for m in smtp.handler.messages) == ["bob@example.org", "cy@example.org"]
        cy_mail = smtp.handler.to("cy@example.org")[0]
        assert cy_mail.message["Subject"] == "Do you still want our newsletter?"
        assert cy_mail.message["List-Unsubscribe"].startswith("<http://mailer.test/unsubscribe/")
        assert "14 days" in cy_mail.message.get_body(("plain",)).get_content()
        keep = _keep_link(cy_mail.data)

        # Scanning and draining again sends nothing more.
        assert automations.scan_inactive(session, settings, now=now).asked == 0
        assert automations.send_due_automations(session, settings, rt.tokens, real).sent == 0

        # cy answers: GET only shows the button (mail scanners fetch links) ...
        page = client.get(keep)
        assert page.status_code == 200 and "Keep me subscribed" in page.get_data(as_text=True)
        assert _state(session, readers["cy"])[0] == EngagementState.ASKED
        # ... a POST without the form's CSRF token changes nothing ...
        assert client.post(keep).status_code == 400
        assert _state(session, readers["cy"])[0] == EngagementState.ASKED
        # ... the form keeps them.
        answer = client.post(keep, data={"csrf_token": csrf_from(page.get_data(as_text=True))})
        assert answer.status_code == 200 and "You stay subscribed" in answer.get_data(as_text=True)
        assert _state(session, readers["cy"]) == (EngagementState.KEPT, Frequency.IMMEDIATE)

        # Before the grace period ends nobody is paused; after it, bob is.
        assert automations.scan_inactive(session, settings, now=now + timedelta(days=13)).paused == 0
        later = now + timedelta(days=15)
        report = automations.scan_inactive(session, settings, now=later)
        assert report.paused == 1
        assert _state(session, readers["bob"]) == (EngagementState.PAUSED, Frequency.PAUSED)
        bob = session.get(Reader, readers["bob"].id)
        assert bob.status == "confirmed" and bob.resume_frequency == Frequency.IMMEDIATE
        assert _state(session, readers["cy"]) == (EngagementState.KEPT, Frequency.IMMEDIATE)

        # Months later, still silent: never a second re-engagement email.
        for days in (120, 400):
            automations.scan_inactive(session, settings, now=now + timedelta(days=days))
            automations.send_due_automations(session, settings, rt.tokens, real)
        assert len(smtp.handler.messages) == 2
    assert session.scalar(select(func.count()).select_from(AutomationDelivery)) == 2
    kinds = [k for (k,) in session.execute(
        select(ReaderEvent.kind).where(ReaderEvent.reader_id == readers["bob"].id)
        .order_by(ReaderEvent.id))]
    assert kinds[-2:] == ["reengage-asked", "paused-inactive"]


def test_paused_reader_resumes_with_the_link_or_the_preference_centre(session, rt, sender, client,
                                                                      dispatch):
    readers = _world(session, rt)
    settings = _policy(rt)
    now = utcnow()
    automations.scan_inactive(session, settings, now=now)
    automations.send_due_automations(session, settings, rt.tokens, sender)
    automations.scan_inactive(session, settings, now=now + timedelta(days=15))
    assert _state(session, readers["bob"])[1] == Frequency.PAUSED
    assert _state(session, readers["cy"])[1] == Frequency.PAUSED
    # bob: the link, even after the pause, brings his digests back
    bob = session.get(Reader, readers["bob"].id)
    keep = rt.tokens.reader_token(Purpose.KEEP, bob.id, bob.token_nonce)
    page = client.get(f"/keep/{keep}").get_data(as_text=True)
    answer = client.post(f"/keep/{keep}", data={"csrf_token": csrf_from(page)})
    assert "start again" in answer.get_data(as_text=True)
    assert _state(session, readers["bob"]) == (EngagementState.KEPT, Frequency.IMMEDIATE)
    # cy: the preference centre says why, and choosing a frequency there is an answer too
    cy = session.get(Reader, readers["cy"].id)
    prefs = rt.tokens.reader_token(Purpose.PREFERENCES, cy.id, cy.token_nonce)
    assert "had not opened one for a while" in client.get(f"/preferences/{prefs}").get_data(as_text=True)
    update_preferences(session, readers["cy"].id, name="cy", topics=["local"], frequency="weekly")
    assert _state(session, readers["cy"]) == (EngagementState.KEPT, Frequency.WEEKLY)
    automations.scan_inactive(session, settings, now=now + timedelta(days=40))
    assert _state(session, readers["cy"])[1] == Frequency.WEEKLY  # not paused again


def test_coming_back_by_reading_counts_and_machines_do_not(session, rt, sender, dispatch):
    readers = _world(session, rt)
    settings = _policy(rt)
    now = utcnow()
    automations.scan_inactive(session, settings, now=now)
    automations.send_due_automations(session, settings, rt.tokens, sender)
    # bob's next opens are machine opens again; cy clicks a digest link
    session.add(ReaderEvent(reader_id=readers["bob"].id, kind="open-machine", created_at=now + timedelta(days=1)))
    session.add(ReaderEvent(reader_id=readers["cy"].id, kind="click", created_at=now + timedelta(days=1)))
    session.commit()
    report = automations.scan_inactive(session, settings, now=now + timedelta(days=15))
    assert (report.kept, report.paused) == (1, 1)
    assert _state(session, readers["cy"]) == (EngagementState.KEPT, Frequency.IMMEDIATE)
    assert _state(session, readers["bob"]) == (EngagementState.PAUSED, Frequency.PAUSED)


def test_off_by_default_and_untracked_digests_prove_nothing(session, rt, sender, dispatch):
    _world(session, rt, tracking=False)
    assert rt.settings.inactive_months == 0
    assert automations.scan_inactive(session, rt.settings).asked == 0
    assert automations.scan_inactive_due(session, rt.settings) is None
    # On, but no digest was tracked: silence means nothing, nobody is asked.
    assert automations.scan_inactive(session, _policy(rt)).asked == 0
    assert session.scalar(select(func.count()).select_from(AutomationDelivery)) == 0


def test_too_few_digests_or_too_new_is_not_inactive(session, rt, sender, dispatch):
    readers = _world(session, rt)
    assert automations.scan_inactive(session, _policy(rt, inactive_min_digests=3)).asked == 0
    session.execute(update(Reader).where(Reader.id == readers["cy"].id)
                    .values(created_at=utcnow() - timedelta(days=10)))
    session.commit()
    assert automations.scan_inactive(session, _policy(rt)).asked == 1  # bob only


def test_the_system_automation_is_no_editors_automation(session, rt, sender, api, dispatch):
    _world(session, rt)
    automations.scan_inactive(session, _policy(rt))
    system = session.scalar(select(Automation))
    assert system is not None and system.trigger == "reader.inactive"
    assert api.get("/api/v1/automations").get_json()["automations"] == []
    with pytest.raises(Exception, match="No such automation"):
        automations.get_automation(session, system.id)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # tampered signature
    lambda t: "r999999." + t.split(".", 1)[1],  # another reader's id
    lambda t: "garbage",
    lambda t: "x" * 2000,
])
def test_bad_keep_links_get_a_clear_page_with_a_way_forward(session, rt, sender, client, mangle):
    reader = factories.reader(session, "dee@example.org")
    token = rt.tokens.reader_token(Purpose.KEEP, reader.id, reader.token_nonce)
    for method in (client.get, client.post):
        r = method(f"/keep/{mangle(token)}")
        assert r.status_code in (400, 404, 410)
        if r.status_code != 400:  # 400: the POST's CSRF check answered first
            body = r.get_data(as_text=True)
            assert "Email me a new link" in body and "/link" in body


def test_other_purposes_do_not_keep(session, rt, sender, client):
    reader = factories.reader(session, "eve@example.org")
    unsubscribe = rt.tokens.reader_token(Purpose.UNSUBSCRIBE, reader.id, reader.token_nonce)
    assert client.get(f"/keep/{unsubscribe}").status_code == 404
    keep = rt.tokens.reader_token(Purpose.KEEP, reader.id, reader.token_nonce)
    assert client.get(f"/unsubscribe/{keep}").status_code == 404


def test_keep_for_someone_who_left_explains_and_offers_a_way_back(session, rt, sender, client):
    reader = factories.reader(session, "fay@example.org")
    keep = rt.tokens.reader_token(Purpose.KEEP, reader.id, reader.token_nonce)
    page = client.get(f"/keep/{keep}").get_data(as_text=True)
    reader.status = "unsubscribed"
    session.commit()
    r = client.post(f"/keep/{keep}", data={"csrf_token": csrf_from(page)})
    assert r.status_code == 409 and "Subscribe again" in r.get_data(as_text=True)
    assert session.get(Reader, reader.id).engagement_state == EngagementState.NONE


def test_the_tick_scans_at_most_every_few_minutes(session, rt, sender, dispatch, monkeypatch):
    from mailer.automations import reengage

    _world(session, rt)
    monkeypatch.setattr(reengage, "_last_scan", {})
    now = [1000.0]
    settings = _policy(rt)
    first = automations.scan_inactive_due(session, settings, clock=lambda: now[0])
    assert first is not None and first.asked == 2
    now[0] += 10
    assert automations.scan_inactive_due(session, settings, clock=lambda: now[0]) is None
    now[0] += reengage.SCAN_EVERY_SECONDS
    again = automations.scan_inactive_due(session, settings, clock=lambda: now[0])
    assert again is not None and again.asked == 0  # ran, and asked nobody twice


def test_concurrent_scans_ask_and_pause_each_reader_once(session, rt, sender, dispatch):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("concurrent writers are tested against PostgreSQL (SQLite serialises them)")
    import threading

    from sqlalchemy.orm import Session

    readers = _world(session, rt)
    settings = _policy(rt)
    engine = session.get_bind()
    now = utcnow()

    def race(at):  # type: ignore[no-untyped-def]
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []

        def scan() -> None:
            with Session(engine) as own:
                barrier.wait()
                try:
                    automations.scan_inactive(own, settings, now=at)
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

        threads = [threading.Thread(target=scan) for _ in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        return errors

    automations.reengage_step(session, settings.base_url, settings.inactive_grace_days)
    session.commit()  # the system automation exists before the race
    assert race(now) == []
    assert session.scalar(select(func.count()).select_from(AutomationDelivery)) == 2
    digests = len(sender.messages)
    automations.send_due_automations(session, settings, rt.tokens, sender)
    assert len(sender.messages) - digests == 2
    assert race(now + timedelta(days=15)) == []
    session.expire_all()
    counts = dict(session.execute(
        select(ReaderEvent.kind, func.count()).where(ReaderEvent.kind.in_(
            ("reengage-asked", "paused-inactive"))).group_by(ReaderEvent.kind)).all())
    assert counts == {"reengage-asked": 2, "paused-inactive": 2}
    assert _state(session, readers["bob"]) == (EngagementState.PAUSED, Frequency.PAUSED)
