"""Content: articles, topics, RSS/Atom feeds, digests and their schedules.
"""

from mailer.content.articles import (
    ArticleCard,
    article_card,
    article_json,
    create_article,
    create_topic,
    upsert_article,
)
from mailer.content.digests import MAX_ID, digest_json, find_digest, save_digest
from mailer.content.feeds import (
    MAX_FEED_BYTES,
    FeedError,
    FirstFetchFailed,
    add_feed,
    check_topics,
    delete_feed,
    feed_json,
    import_items,
    parse_category_map,
    parse_feed,
    poll_feed,
    queue_due_feeds,
    save_feed,
    set_feed_paused,
)

__all__ = [
    "MAX_FEED_BYTES",
    "MAX_ID",
    "ArticleCard",
    "FeedError",
    "FirstFetchFailed",
    "add_feed",
    "article_card",
    "article_json",
    "check_topics",
    "create_article",
    "create_topic",
    "delete_feed",
    "digest_json",
    "feed_json",
    "find_digest",
    "import_items",
    "parse_category_map",
    "parse_feed",
    "poll_feed",
    "queue_due_feeds",
    "save_digest",
    "save_feed",
    "set_feed_paused",
    "upsert_article",
]
