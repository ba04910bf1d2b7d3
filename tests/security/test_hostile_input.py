"""Hostile input that used to end in a 500 or worse (issue 15): deep or
surrogate-laden JSON on every JSON route, CSV cells that spreadsheets would run,
free text mailed to unconfirmed addresses, and unlimited test sends."""

from __future__ import annotations

import csv
import dataclasses
import io
import re

import pytest

from mailer.common import limits_storage
from mailer.console import quotas
from mailer.readers import confirmations, export_readers, subscribe
from tests.support import factories

DEEP = ("[" * 20_000 + "]" * 20_000).encode()
DEEP_OBJECT = ('{"a":' * 5_000 + "1" + "}" * 5_000).encode()
SURROGATE = b'{"slug": "s\\ud800", "name": "\\udfff", "email": "a\\ud83d@example.org", "url": "x"}'


def _json_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/webhooks/")):
            continue
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH"}):
            path = re.sub(r"<(?:int:)?[a-z_]+>", "1", rule.rule)
            routes.append((method, path))
    assert len(routes) >= 10
    return routes


@pytest.mark.parametrize("payload", [DEEP, DEEP_OBJECT, SURROGATE], ids=["array", "object", "surrogate"])
def test_every_json_route_answers_4xx_to_deep_or_surrogate_json(app, client, rt, session,
                                                              monkeypatch, payload):
    factories.digest(session, "Daily")
    # The SES webhook parses unsigned bodies when SNS topics are configured: the
    # unauthenticated path.
    monkeypatch.setattr(rt, "settings", dataclasses.replace(
        rt.settings, bounce_webhook_secret="hook-secret",
        sns_topic_arns=("arn:aws:sns:eu-west-1:123456789012:ses",)))
    for auth in ({"Authorization": "Bearer test-token"}, {}):
        for method, path in _json_routes(app):
            for ctype in ("application/json", "text/plain"):
                answer = client.open(path, method=method, data=payload,
                                     headers={**auth, "Content-Type": ctype})
                assert 400 <= answer.status_code < 500, (method, path, answer.status_code)
    hooked = client.post("/webhooks/bounces", data=payload,
                         headers={"X-Webhook-Secret": "hook-secret",
                                  "Content-Type": "application/json"})
    assert hooked.status_code == 400


def test_csv_export_neutralises_every_cell(session):
    factories.reader(session, "=1+2@example.org", name="+cmd")
    factories.reader(session, "-sum@example.org", name="@SUM(A1)")
    factories.reader(session, "plain@example.org", name="\tTab")
    rows = list(csv.reader(io.StringIO("".join(export_readers(session)))))
    for row in rows[1:]:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), row
    assert ["'=1+2@example.org", "'+cmd"] == rows[1][:2]


@pytest.mark.parametrize("name, shown", [
    ("Ada Lovelace", True),
    ("Win a prize at https://evil.example/x", False),
    ("see evil.example today", False),
    ("www.evil.example", False),
    ("write to boss@evil.example", False),
    ("A" * 41, False),
])
def test_names_in_emails_to_unconfirmed_addresses_are_short_and_linkless(session, rt, sender,
                                                                        name, shown):
    result = subscribe(session, email="new@example.org", name=name)
    confirmations.send_confirmation(session, rt.settings, rt.tokens, sender, result.reader_id)
    [(_, to, data)] = sender.messages
    assert to == "new@example.org"
    text = data.decode()
    assert (name in text) is shown
    assert "evil.example" not in text


def test_test_sends_are_capped_per_account_per_hour(api, session, rt, sender, settings_override):
    t = factories.topic(session, "local")
    factories.article(session, topics=[t], title="Ferry timetable changes")
    digest = factories.digest(session, "Daily", topics=[t])
    quotas._limiter(limits_storage.storage_uri_for(rt.settings.redis_url,
                                                   rt.settings.instance_path)).storage.reset()
    settings_override(test_send_hourly_cap=3)
    path = f"/api/v1/digests/{digest.id}/test-send"
    first = api.post(path, json={"addresses": ["a@example.org", "b@example.org"]})
    assert first.status_code == 200
    second = api.post(path, json={"addresses": ["c@example.org", "d@example.org"]})
    assert second.status_code == 429 and "addresses" in second.json["fields"]
    assert len(sender.messages) == 2
    assert api.post(path, json={"addresses": ["c@example.org"]}).status_code == 200
