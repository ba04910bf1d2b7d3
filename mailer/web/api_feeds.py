"""API: RSS/Atom feeds."""

from __future__ import annotations

from sqlalchemy import select

from mailer import content as content_service
from mailer.common import NotFound, clean_url
from mailer.extensions import db
from mailer.models import Feed
from mailer.runtime import runtime
from mailer.web.api import api_blueprint, given, route
from mailer.web.api_schemas import FeedIn, FeedList, FeedOut, FeedPolled

api_feeds = api_blueprint("api_feeds")


@route(api_feeds, "GET", "/feeds", "Feeds with their last fetch status", ok={200: FeedList})
def list_feeds() -> FeedList:
    rows = db.session.scalars(select(Feed).order_by(Feed.id))
    return FeedList.model_validate({"feeds": [content_service.feed_json(f) for f in rows]})


@route(api_feeds, "POST", "/feeds", "Add a feed, or change the one with this URL",
       body=FeedIn, ok={201: FeedOut, 200: FeedOut})
def save_feed(body: FeedIn) -> tuple[FeedOut, int]:
    url = clean_url(body.url, "url")
    existed = db.session.scalar(select(Feed.id).where(Feed.url == url)) is not None
    feed = content_service.save_feed(db.session, given(body))
    return FeedOut.model_validate(content_service.feed_json(feed)), 200 if existed else 201


@route(api_feeds, "POST", "/feeds/<int:feed_id>/poll", "Fetch a feed now", ok={200: FeedPolled})
def poll_feed(feed_id: int) -> FeedPolled:
    feed = db.session.get(Feed, feed_id)
    if feed is None:
        raise NotFound(f"No feed {feed_id}.")
    feed.next_poll_at = None
    db.session.commit()
    result = content_service.poll_feed(db.session, feed_id,
                                       allow_private=runtime().settings.allow_private_urls)
    db.session.expire_all()
    data = content_service.feed_json(db.session.get(Feed, feed_id))  # type: ignore[arg-type]
    data["imported_now"] = result.imported if result else 0
    return FeedPolled.model_validate(data)
