"""Content: articles, topics, RSS/Atom feeds, digests and their schedules.
"""

from mailer.content.articles import article_json, create_topic, upsert_article
from mailer.content.digests import (
    MAX_ID,
    archive_digest,
    digest_json,
    find_digest,
    list_digests,
    restore_digest,
    save_digest,
)
from mailer.content.feeds import (
    MAX_FEED_BYTES,
    FeedError,
    check_topics,
    feed_json,
    import_items,
    parse_feed,
    poll_feed,
    queue_due_feeds,
    save_feed,
)

__all__ = [
    "MAX_FEED_BYTES",
    "MAX_ID",
    "FeedError",
    "archive_digest",
    "article_json",
    "check_topics",
    "create_topic",
    "digest_json",
    "feed_json",
    "find_digest",
    "import_items",
    "list_digests",
    "parse_feed",
    "poll_feed",
    "queue_due_feeds",
    "restore_digest",
    "save_digest",
    "save_feed",
    "upsert_article",
]
