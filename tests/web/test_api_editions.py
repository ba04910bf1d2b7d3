"""The edition routes of the second round: list, ledger rows, retry, templates, and
no empty editions; each with bad input (4xx naming the field, never 5xx)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer import editions
from mailer.models import Delivery, DeliveryStatus, Edition, EditionStatus, ReaderStatus
from mailer.readers.subscriptions import suppress
from tests.support import factories


@pytest.fixture
def sent_edition(session, rt, dispatch):
    """An edition whose ledger holds one row of each interesting outcome."""
    t = factories.topic(session, "local")
    readers = {name: factories.reader(session, f"{name}@example.org", topics=[t])
               for name in ("ok", "bounced", "gone", "lost", "lost-suppressed", "later")}
    factories.article(session, topics=[t], title="Harbour news")
    digest = factories.digest(session, "Daily", topics=[t])
    edition = editions.start_edition(session, digest.name)
    editions.prepare_edition(session, rt.settings, edition.id)
    outcome = {"ok": (DeliveryStatus.SENT, 250, ""),
               "bounced": (DeliveryStatus.FAILED, 550, "550 5.1.1 no such user"),
               "gone": (DeliveryStatus.FAILED, 552, "552 mailbox full"),
               "lost": (DeliveryStatus.UNKNOWN, None, "connection lost after DATA"),
               "lost-suppressed": (DeliveryStatus.UNKNOWN, None, "connection lost after DATA"),
               "later": (DeliveryStatus.RETRY, 451, "451 try later")}
    for name, reader in readers.items():
        row = session.scalar(select(Delivery).where(Delivery.reader_id == reader.id))
        row.status, row.smtp_code, row.error = outcome[name]
        row.attempts = 1
    readers["gone"].status = ReaderStatus.UNSUBSCRIBED
    suppress(session, "lost-suppressed@example.org", "complaint")
    session.get(Edition, edition.id).status = EditionStatus.DONE
    session.commit()
    dispatch.sent.clear()
    return edition.id


def statuses(session, edition_id) -> dict[str, str]:
    session.expire_all()
    rows = session.execute(select(Delivery.reader_id, Delivery.status)
                           .where(Delivery.edition_id == edition_id)).all()
    from mailer.models import Reader
    emails = dict(session.execute(select(Reader.id, Reader.email)).all())
    return {emails[r].split("@")[0]: s for r, s in rows}


def test_editions_list_newest_first_with_counters(api, sent_edition, session):
    r = api.get("/api/v1/editions")
    assert r.status_code == 200
    [first] = r.json["editions"]
    assert first["id"] == sent_edition and r.json["page"] == 1 and r.json["next_page"] is None
    assert (first["planned"], first["sent"], first["failed"], first["unknown"], first["retrying"]) == (
        6, 1, 2, 2, 1)
    assert first == api.get(f"/api/v1/editions/{sent_edition}").json
    assert api.get("/api/v1/editions?page=2").json["editions"] == []
    for bad in ("0", "-1", "abc", "1e3", str(2**70)):
        r = api.get(f"/api/v1/editions?page={bad}")
        assert r.status_code == 400 and "page" in r.json["fields"], bad


def test_editions_list_pages(session, rt, dispatch):
    t = factories.topic(session)
    factories.reader(session, topics=[t])
    digest = factories.digest(session, topics=[t])
    ids = []
    for _ in range(3):
        factories.article(session, topics=[t])
        ids.append(editions.start_edition(session, digest.id).id)
    page1, more = editions.list_editions(session, 1, per_page=2)
    page2, more2 = editions.list_editions(session, 2, per_page=2)
    assert [e["id"] for e in page1 + page2] == ids[::-1] and more and not more2


def test_deliveries_by_status(api, sent_edition):
    r = api.get(f"/api/v1/editions/{sent_edition}/deliveries?status=failed")
    assert r.status_code == 200 and r.json["edition_id"] == sent_edition
    rows = {d["email"]: d for d in r.json["deliveries"]}
    assert set(rows) == {"bounced@example.org", "gone@example.org"}
    bounced = rows["bounced@example.org"]
    assert (bounced["status"], bounced["smtp_code"], bounced["error"]) == (
        "failed", 550, "550 5.1.1 no such user")
    assert bounced["created_at"] and "sent_at" in bounced and "next_attempt_at" in bounced
    everything = api.get(f"/api/v1/editions/{sent_edition}/deliveries").json["deliveries"]
    assert len(everything) == 6
    for status, n in (("unknown", 2), ("retry", 1), ("sent", 1), ("skipped", 0)):
        got = api.get(f"/api/v1/editions/{sent_edition}/deliveries?status={status}").json
        assert len(got["deliveries"]) == n and {d["status"] for d in got["deliveries"]} <= {status}


@pytest.mark.parametrize("query, field", [("status=bogus", "status"), ("status=%00", "status"),
                                          ("page=0", "page"), ("page=x", "page")])
def test_deliveries_bad_query(api, sent_edition, query, field):
    r = api.get(f"/api/v1/editions/{sent_edition}/deliveries?{query}")
    assert r.status_code == 400 and field in r.json["fields"]


def test_deliveries_of_unknown_editions(api):
    for edition_id in ("999", "0", str(2**80)):
        assert api.get(f"/api/v1/editions/{edition_id}/deliveries").status_code == 404


def test_retry_failed_then_unknown(api, session, sent_edition, dispatch):
    r = api.post(f"/api/v1/editions/{sent_edition}/retry", json={"statuses": ["failed"]})
    assert r.status_code == 202 and r.json == {"requeued": 1, "skipped": 1}
    assert statuses(session, sent_edition) == {
        "ok": "sent", "bounced": "pending", "gone": "skipped", "lost": "unknown",
        "lost-suppressed": "unknown", "later": "retry"}
    row = session.scalar(select(Delivery).join(Edition).where(Delivery.status == "pending"))
    assert (row.attempts, row.smtp_code, row.error, row.next_attempt_at) == (0, None, "", None)
    assert session.get(Edition, sent_edition).status == EditionStatus.SENDING
    assert session.get(Edition, sent_edition).finished_at is None
    assert "mailer.send_lane" in dispatch.names()

    r = api.post(f"/api/v1/editions/{sent_edition}/retry", json={"statuses": ["unknown", "failed"]})
    assert r.status_code == 202 and r.json == {"requeued": 1, "skipped": 1}
    assert statuses(session, sent_edition) == {
        "ok": "sent", "bounced": "pending", "gone": "skipped", "lost": "pending",
        "lost-suppressed": "skipped", "later": "retry"}
    # Nothing left to retry: no change, still an answer
    r = api.post(f"/api/v1/editions/{sent_edition}/retry", json={"statuses": ["failed", "unknown"]})
    assert r.status_code == 202 and r.json == {"requeued": 0, "skipped": 0}


def test_retry_keeps_a_paused_edition_paused(api, session, sent_edition, dispatch):
    session.get(Edition, sent_edition).status = EditionStatus.PAUSED
    session.commit()
    r = api.post(f"/api/v1/editions/{sent_edition}/retry", json={"statuses": ["failed"]})
    assert r.status_code == 202 and r.json["requeued"] == 1
    session.expire_all()
    assert session.get(Edition, sent_edition).status == EditionStatus.PAUSED
    assert dispatch.names() == []


def test_retry_refuses_cancelled_editions_and_unknown_ones(api, session, sent_edition):
    session.get(Edition, sent_edition).status = EditionStatus.CANCELLED
    session.commit()
    r = api.post(f"/api/v1/editions/{sent_edition}/retry", json={"statuses": ["failed"]})
    assert r.status_code == 409 and r.json["error"]
    assert statuses(session, sent_edition)["bounced"] == "failed"
    assert api.post("/api/v1/editions/999/retry", json={"statuses": ["failed"]}).status_code == 404


@pytest.mark.parametrize("body", [
    {}, {"statuses": []}, {"statuses": ["sent"]}, {"statuses": ["retry"]}, {"statuses": "failed"},
    {"statuses": [None]}, {"statuses": ["failed", "unknown", "failed"]}, {"statuses": ["\ud800"]},
    {"statuses": [1e308]}, {"statuses": {"failed": True}},
])
def test_retry_bad_bodies_name_statuses(api, session, sent_edition, body):
    r = api.post(f"/api/v1/editions/{sent_edition}/retry", json=body)
    assert r.status_code == 400 and "statuses" in r.json["fields"], r.json
    assert statuses(session, sent_edition)["bounced"] == "failed"


@pytest.mark.parametrize("raw", ["[]", "null", "\"failed\"", "not json", "{\"statuses\": [\"fail",
                                 "[" * 100_000 + "]" * 100_000])
def test_retry_non_object_bodies(api, sent_edition, raw):
    r = api.post(f"/api/v1/editions/{sent_edition}/retry", data=raw, content_type="application/json")
    assert r.status_code == 400 and "body" in r.json["fields"]


def test_retry_service_checks_statuses_for_every_caller(session, sent_edition):
    from mailer.common import ValidationError
    from mailer.delivery import retry_deliveries

    for bad in ([], ["sent"], ["pending", "failed"]):
        with pytest.raises(ValidationError) as info:
            retry_deliveries(session, sent_edition, bad, lanes=1)
        assert "statuses" in info.value.fields


def test_templates_are_digest_layouts_only(api):
    r = api.get("/api/v1/templates")
    names = [t["name"] for t in r.json["templates"]]
    assert r.status_code == 200 and "digest" in names
    assert not {"confirm", "change-email"} & set(names)
    assert [t["name"] for t in r.json["templates"] if t["default"]] == ["digest"]


@pytest.mark.parametrize("template", ["confirm", "change-email", "nope", "../digest", "", 5, None])
def test_digest_with_another_template_is_refused(api, session, template):
    r = api.post("/api/v1/digests", json={"name": "Daily", "template": template})
    assert 400 <= r.status_code < 500 and "template" in r.json["fields"], r.json
    r = api.post("/api/v1/digests", json={"name": "Daily", "template": "digest"})
    assert r.status_code == 201 and r.json["template"] == "digest"
    r = api.post(f"/api/v1/digests/{r.json['id']}", json={"template": "confirm"})
    assert r.status_code == 400 and "template" in r.json["fields"]


@pytest.fixture
def nobody_owed(session):
    """New articles, confirmed readers, but no reader wants any of the articles."""
    local, sport = factories.topic(session, "local"), factories.topic(session, "sport")
    factories.reader(session, topics=[sport])
    factories.article(session, topics=[local])
    return factories.digest(session, "Daily", topics=[local, sport])


def test_no_edition_when_nobody_is_owed_anything(api, session, nobody_owed):
    r = api.post("/api/v1/editions", json={"digest": "Daily"})
    assert r.status_code == 409 and "digest" in r.json["fields"]
    assert session.scalar(select(func.count()).select_from(Edition)) == 0


def test_cli_send_creates_no_empty_edition(app, session, nobody_owed, dispatch):
    result = app.test_cli_runner().invoke(args=["send", "Daily", "--no-wait"])
    assert result.exit_code != 0 and "owed" in result.output
    assert session.scalar(select(func.count()).select_from(Edition)) == 0


@pytest.mark.parametrize("body, field", [
    ({}, "digest"), ({"digest": None}, "digest"), ({"digest": True}, "digest"),
    ({"digest": ""}, "digest"), ({"digest": 1.5}, "digest"), ({"digest": 10**30}, "digest"),
    ({"digest": "\ud800"}, "digest"), ({"digest": ["Daily"]}, "digest"), ({"digest": "x" * 201}, "digest"),
])
def test_create_edition_bad_bodies(api, session, body, field):
    r = api.post("/api/v1/editions", json=body)
    assert r.status_code == 400 and field in r.json["fields"], r.json
    assert session.scalar(select(func.count()).select_from(Edition)) == 0


def test_lone_surrogates_and_huge_numbers_elsewhere(api, session):
    cases = [("/api/v1/articles", '{"url": "https://n.example/x", "title": "\\ud800"}', "title"),
             ("/api/v1/topics", '{"slug": "a", "name": "\\udfff x"}', "name"),
             ("/api/v1/subscribers", '{"email": "a@example.org", "name": "\\ud83d"}', "name"),
             ("/api/v1/digests", '{"name": "D", "max_articles": 1e400}', "max_articles"),
             ("/api/v1/digests", '{"name": "D", "max_articles": 100000000000000000000000}', "max_articles"),
             ("/api/v1/feeds", '{"url": "https://f.example/x", "category_map": {"\\ud800": "a"}}',
              "category_map"),
             ("/api/v1/feeds", '{"url": "https://f.example/x", "poll_minutes": NaN}', "poll_minutes")]
    for path, raw, field in cases:
        r = api.post(path, data=raw, content_type="application/json")
        assert r.status_code == 400 and field in r.json["fields"], (path, raw, r.json)


def test_erased_readers_show_no_address_and_are_skipped(api, session, sent_edition):
    from mailer.models import Reader

    bounced = session.scalar(select(Reader).where(Reader.email == "bounced@example.org"))
    session.delete(bounced)  # erasure keeps the anonymous ledger row
    session.commit()
    rows = api.get(f"/api/v1/editions/{sent_edition}/deliveries?status=failed").json["deliveries"]
    assert sorted(str(d["email"]) for d in rows) == ["None", "gone@example.org"]
    r = api.post(f"/api/v1/editions/{sent_edition}/retry", json={"statuses": ["failed"]})
    assert r.json == {"requeued": 0, "skipped": 2}
    session.expire_all()
    assert session.get(Edition, sent_edition).status == EditionStatus.DONE  # nothing to send


def test_retried_rows_are_sent_by_a_lane_and_the_edition_finishes(api, session, rt, sender, sent_edition):
    from mailer import delivery

    session.execute(Delivery.__table__.update().where(Delivery.status == DeliveryStatus.RETRY)
                    .values(status=DeliveryStatus.SENT))  # only the retried rows remain to send
    session.commit()
    r = api.post(f"/api/v1/editions/{sent_edition}/retry", json={"statuses": ["failed", "unknown"]})
    assert r.json == {"requeued": 2, "skipped": 2}
    delivery.run_lane(session, sent_edition, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, None))
    assert sorted(rcpt for _, rcpt, _ in sender.messages) == ["bounced@example.org", "lost@example.org"]
    assert statuses(session, sent_edition) == {
        "ok": "sent", "bounced": "sent", "gone": "skipped", "lost": "sent",
        "lost-suppressed": "skipped", "later": "sent"}
    edition = api.get(f"/api/v1/editions/{sent_edition}").json
    assert (edition["status"], edition["remaining"], edition["failed"], edition["unknown"]) == ("done", 0, 0, 0)
