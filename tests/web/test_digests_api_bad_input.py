"""Hostile bodies for the digest, preview, test-send and feed endpoints: 4xx, never 500."""

from __future__ import annotations

import pytest

from tests.support import factories

HOSTILE = [None, 5, -1, 1e308, True, "", "x" * 5000, "a\r\nb", "\x00", "<script>", [], {}, ["x"], {"a": 1},
           "日本語", "'; DROP TABLE digests; --"]


@pytest.fixture
def digest(session):
    t = factories.topic(session, "local")
    factories.article(session, topics=[t])
    return factories.digest(session, "Daily", topics=[t])


@pytest.mark.parametrize("field", ["name", "topics", "subject", "schedule", "timezone", "max_articles",
                                   "approval", "template"])
def test_update_digest_fields(api, digest, field):
    for value in HOSTILE:
        r = api.post(f"/api/v1/digests/{digest.id}", json={field: value})
        assert r.status_code < 500, (field, value, r.json)


@pytest.mark.parametrize("field", ["url", "topic", "category_map", "poll_minutes"])
def test_feed_fields(api, digest, field):
    for value in HOSTILE:
        body = {"url": "https://feeds.example.org/x", field: value}
        r = api.post("/api/v1/feeds", json=body)
        assert r.status_code < 500, (field, value, r.json)


def test_test_send_and_preview_params(api, digest, sender):
    for value in HOSTILE:
        r = api.post(f"/api/v1/digests/{digest.id}/test-send", json={"addresses": value})
        assert r.status_code < 500, (value, r.json)
    for body in ("not json", "[]", "null"):
        r = api.post(f"/api/v1/digests/{digest.id}/test-send", data=body,
                     content_type="application/json")
        assert r.status_code == 400
    for query in ("format=%00", "format=page&width=%0d%0a", "format=page&width=" + "x" * 3000):
        assert api.get(f"/api/v1/digests/{digest.id}/preview?{query}").status_code == 400
    for path in ("/api/v1/digests/0/preview", "/api/v1/editions/0/preview", "/api/v1/editions/0/approve",
                 "/api/v1/digests/99999999999999999999/preview",
                 "/api/v1/editions/99999999999999999999/preview",
                 "/api/v1/editions/99999999999999999999/approve", "/api/v1/feeds/99999999999999999999/poll"):
        r = api.get(path) if path.endswith("preview") else api.post(path)
        assert r.is_json
        assert r.status_code in (404, 405), path
