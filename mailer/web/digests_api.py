"""JSON API for digest previews, test sends, feeds and draft approval
(`/api/v1/...`, bearer token like the rest of the API)."""

from __future__ import annotations

import hashlib
from functools import partial

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from mailer import content as content_service
from mailer import editions as editions_service
from mailer.common import NotFound, clean_url
from mailer.console import spend_test_sends
from mailer.content import MAX_ID, digest_json, find_digest, save_digest
from mailer.editions import approve_edition, progress
from mailer.extensions import csrf, db
from mailer.models import Feed
from mailer.runtime import runtime
from mailer.web.api import authenticate, body

digests_api = Blueprint("digests_api", __name__)
csrf.exempt(digests_api)
digests_api.before_request(authenticate)


def _preview_response(preview: editions_service.Preview) -> Response:
    fmt = request.args.get("format", "json")
    if fmt == "html":
        return Response(preview.html, mimetype="text/html")
    if fmt == "text":
        return Response(preview.text, mimetype="text/plain")
    if fmt == "page":
        return Response(editions_service.preview_page(preview, request.args.get("width", "desktop")),
                        mimetype="text/html")
    if fmt != "json":
        return jsonify(error="format must be json, html, text or page.",
                       fields={"format": "invalid"}), 400  # type: ignore[return-value]
    return jsonify(preview.json())


@digests_api.get("/digests/<int:digest_id>")
def get_digest(digest_id: int) -> Response:
    return jsonify(digest_json(find_digest(db.session, digest_id)))


@digests_api.post("/digests/<int:digest_id>")
def update_digest(digest_id: int) -> Response:
    digest = find_digest(db.session, digest_id)
    return jsonify(digest_json(save_digest(db.session, body(), digest)))


@digests_api.get("/digests/<int:digest_id>/preview")
def preview_digest(digest_id: int) -> Response:
    return _preview_response(editions_service.preview_digest(db.session, runtime().settings, digest_id))


@digests_api.post("/digests/<int:digest_id>/test-send")
def test_send(digest_id: int) -> Response:
    rt = runtime()
    # Capped per token (hashed) per hour, across processes.
    actor = "api:" + hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()[:16]
    results = editions_service.test_send(db.session, rt.settings, rt.sender(), digest_id,
                                 body().get("addresses"),
                                 spend=partial(spend_test_sends, rt.settings, actor))
    return jsonify(results=results)


@digests_api.get("/editions/<int:edition_id>/preview")
def preview_edition(edition_id: int) -> Response:
    return _preview_response(editions_service.preview_edition(db.session, runtime().settings, edition_id))


@digests_api.post("/editions/<int:edition_id>/approve")
def approve(edition_id: int) -> Response:
    if not 0 < edition_id <= MAX_ID:
        raise NotFound(f"No edition {edition_id}.")
    approve_edition(db.session, edition_id)
    return jsonify(progress(db.session, edition_id))


@digests_api.get("/feeds")
def list_feeds() -> Response:
    rows = db.session.scalars(select(Feed).order_by(Feed.id))
    return jsonify(feeds=[content_service.feed_json(f) for f in rows])


@digests_api.post("/feeds")
def save_feed() -> tuple[Response, int]:
    data = body()
    url = clean_url(data.get("url"), "url")
    existed = db.session.scalar(select(Feed.id).where(Feed.url == url)) is not None
    feed = content_service.save_feed(db.session, data)
    return jsonify(content_service.feed_json(feed)), 200 if existed else 201


@digests_api.post("/feeds/<int:feed_id>/poll")
def poll_feed(feed_id: int) -> Response:
    feed = db.session.get(Feed, feed_id) if 0 < feed_id <= MAX_ID else None
    if feed is None:
        return jsonify(error=f"No feed {feed_id}.", fields={}), 404  # type: ignore[return-value]
    feed.next_poll_at = None
    db.session.commit()
    result = content_service.poll_feed(db.session, feed_id,
                                       allow_private=runtime().settings.allow_private_urls)
    db.session.expire_all()
    data = content_service.feed_json(db.session.get(Feed, feed_id))  # type: ignore[arg-type]
    data["imported_now"] = result.imported if result else 0
    return jsonify(data)


