"""Breaking-news alerts: one article, now, through the delivery ledger, to the
readers of its topics who opted in."""

from __future__ import annotations

import email
from email import policy

import pytest
from sqlalchemy import select

from mailer import delivery
from mailer.alerts import send_alert
from mailer.common import ValidationError
from mailer.jobs import TaskName
from mailer.models import Delivery, Digest, Edition, Frequency, ReaderStatus
from mailer.readers import update_preferences
from tests.support import factories


def _world(session):  # type: ignore[no-untyped-def]
    sport = factories.topic(session, "sport")
    arts = factories.topic(session, "arts")
    wants = factories.reader(session, "fan@example.org", topics=[sport], name="Fan")
    wants.alerts = True
    everything = factories.reader(session, "all@example.org")  # no topics: everything
    everything.alerts = True
    factories.reader(session, "quiet@example.org", topics=[sport])  # no alerts
    other = factories.reader(session, "arts@example.org", topics=[arts])
    other.alerts = True
    paused = factories.reader(session, "paused@example.org", topics=[sport],
                              frequency=Frequency.PAUSED)
    paused.alerts = True
    gone = factories.reader(session, "gone@example.org", topics=[sport],
                            status=ReaderStatus.UNSUBSCRIBED)
    gone.alerts = True
    session.commit()
    return factories.article(session, topics=[sport], title="Harbour wins the cup")


def test_alert_goes_once_to_opted_in_readers_of_its_topics(session, dispatch, rt, sender):
    article = _world(session)
    edition = send_alert(session, rt.settings, article.id, created_by="test")
    assert edition.status == "sending" and edition.planned == 2
    assert TaskName.SEND_LANE in dispatch.names()
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, None), budget_seconds=5)
    assert sorted(m[1] for m in sender.messages) == ["all@example.org", "fan@example.org"]
    msg = email.message_from_bytes(sender.messages[0][2], policy=policy.default)
    assert msg["Subject"] == "Breaking: Harbour wins the cup"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Harbour wins the cup" in msg.get_body(("plain",)).get_content()
    statuses = session.scalars(select(Delivery.status).where(Delivery.edition_id == edition.id))
    assert sorted(statuses) == ["sent", "sent"]
    session.expire_all()
    assert session.get(Edition, edition.id).status == "done"
    # Once per article, whoever asks again.
    with pytest.raises(ValidationError) as caught:
        send_alert(session, rt.settings, article.url)
    assert caught.value.status == 409 and "article" in caught.value.fields
    alerts_digest = session.scalar(select(Digest).where(Digest.name == "Breaking news"))
    assert alerts_digest is not None and not alerts_digest.active


def test_no_alert_readers_is_a_conflict_and_creates_nothing(session, dispatch, rt):
    sport = factories.topic(session, "sport")
    factories.reader(session, "quiet@example.org", topics=[sport])
    article = factories.article(session, topics=[sport])
    with pytest.raises(ValidationError) as caught:
        send_alert(session, rt.settings, article.id)
    assert caught.value.status == 409
    session.rollback()
    assert session.scalars(select(Edition)).all() == []
    with pytest.raises(ValidationError) as missing:
        send_alert(session, rt.settings, 999999)
    assert missing.value.status == 404


def test_readers_opt_in_from_preferences(session):
    reader = factories.reader(session, "opt@example.org")
    update_preferences(session, reader.id, name="", topics=[], frequency="daily", alerts=True)
    assert reader.alerts is True
    update_preferences(session, reader.id, name="", topics=[], frequency="daily")
    assert reader.alerts is True  # not offered: unchanged


def test_api_and_console_alerts(api, session, rt):
    article = _world(session)
    answer = api.post("/api/v1/alerts", json={"article": article.id})
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["planned"] == 2
    again = api.post("/api/v1/alerts", json={"article": article.id})
    assert again.status_code == 409 and "article" in again.get_json()["fields"]
    bad = api.post("/api/v1/alerts", json={"article": {"x": 1}})
    assert bad.status_code == 400 and "article" in bad.get_json()["fields"]
