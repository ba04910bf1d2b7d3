from __future__ import annotations

import pytest


def test_api_requires_a_token(client):
    r = client.get("/api/v1/topics")
    assert r.status_code == 401 and r.json["error"]


def test_article_upsert_is_idempotent_on_url(api):
    api.post("/api/v1/topics", json={"slug": "local", "name": "Local"})
    body = {"url": "https://n.example/a", "title": "One", "topics": ["local"],
            "body_html": "<p>ok</p><script>alert(1)</script>"}
    first = api.post("/api/v1/articles", json=body)
    assert first.status_code == 201 and "<script>" not in first.json["body_html"]
    second = api.post("/api/v1/articles", json={**body, "title": "One, updated"})
    assert second.status_code == 200 and second.json["id"] == first.json["id"]
    assert second.json["title"] == "One, updated"


@pytest.mark.parametrize("body, field", [
    ({"title": "x"}, "url"),
    ({"url": "ftp://x", "title": "x"}, "url"),
    ({"url": "https://n.example/b"}, "title"),
    ({"url": "https://n.example/b", "title": "x", "published_at": "yesterday"}, "published_at"),
    ({"url": "https://n.example/b", "title": "x", "topics": ["nope"]}, "topics"),
    ({"url": "https://n.example/b", "title": ["x"]}, "title"),
])
def test_article_bad_fields_are_named(api, body, field):
    r = api.post("/api/v1/articles", json=body)
    assert r.status_code in (400, 422) and field in r.json["fields"]


def test_non_json_body_is_a_400(api):
    r = api.post("/api/v1/articles", data="not json", content_type="application/json")
    assert r.status_code == 400 and r.json["error"]


def test_subscriber_api_and_edition_flow(api, dispatch):
    api.post("/api/v1/topics", json={"slug": "local", "name": "Local"})
    r = api.post("/api/v1/subscribers", json={"email": "x@example.org", "confirmed": True})
    assert r.status_code == 201
    assert api.post("/api/v1/subscribers", json={"email": "y@example.org",
                                                  "confirmed": "yes"}).status_code == 400
    assert api.post("/api/v1/digests", json={"name": "Daily", "topics": ["local"]}).status_code == 201
    r = api.post("/api/v1/editions", json={"digest": "Daily"})
    assert r.status_code == 409 and "no new articles" in r.json["error"]
    api.post("/api/v1/articles", json={"url": "https://n.example/c", "title": "C",
                                       "topics": ["local"]})
    r = api.post("/api/v1/editions", json={"digest": "Daily"})
    assert r.status_code == 202 and r.json["status"] == "compiling"
    edition = api.get(f"/api/v1/editions/{r.json['id']}").json
    for key in ("id", "digest", "status", "planned", "sent", "failed", "unknown", "remaining"):
        assert key in edition
    assert api.get("/api/v1/editions/999").status_code == 404
    assert api.post("/api/v1/editions", json={"digest": "nope"}).status_code == 404


def test_openapi_document_is_served(client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.") and "/editions" in doc["paths"]


def test_openapi_document_covers_every_api_route(app, client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearer": []}]
    schemas = doc["components"]["schemas"]
    routes = {(rule.rule, method.lower()) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and rule.rule != "/api/v1/openapi.json"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    import re
    documented = {("/api/v1" + re.sub(r"\{(\w+)\}", r"<int:\1>", path), method)
                  for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"400", "401"} <= codes and any(c.startswith("2") for c in codes), (path, method)
            for code, response in op["responses"].items():
                for media in response["content"].values():
                    ref = media["schema"].get("$ref")
                    assert ref is None or ref.rsplit("/", 1)[1] in schemas, (path, method, code)
                    if not code.startswith("2"):
                        assert ref is not None and "error" in schemas[ref.rsplit("/", 1)[1]]["properties"]
    for path in ("/editions", "/editions/{edition_id}/deliveries", "/editions/{edition_id}/retry",
                 "/templates"):
        assert path in doc["paths"]
    assert doc["paths"]["/editions/{edition_id}/retry"]["post"]["responses"]["202"]


def test_an_undeclared_api_route_stops_the_document(app):
    from flask import Flask

    from mailer.web.openapi import openapi_document

    bare = Flask("x")
    bare.add_url_rule("/api/v1/secret", "secret", lambda: "")
    with pytest.raises(RuntimeError, match="/api/v1/secret"):
        openapi_document(bare)
