"""Feed commands: `import-feed URL_OR_FILE`, `feeds`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from sqlalchemy import select

from mailer.common import ValidationError
from mailer.content import (
    MAX_FEED_BYTES,
    FeedError,
    check_topics,
    import_items,
    parse_feed,
    poll_feed,
    save_feed,
)
from mailer.extensions import db
from mailer.models import Feed
from mailer.runtime import runtime


def _category_map(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        category, sep, slug = pair.partition("=")
        if not sep or not category.strip() or not slug.strip():
            raise click.BadParameter(f"{pair!r} must look like CATEGORY=TOPIC_SLUG", param_hint="--map")
        mapping[category.strip()] = slug.strip()
    return mapping


def register_feed_commands(app: Flask) -> None:
    @app.cli.command("import-feed")
    @click.argument("source")
    @click.option("--topic", default="", help="Topic slug given to every article of this feed.")
    @click.option("--map", "pairs", multiple=True, metavar="CATEGORY=TOPIC",
                  help="Map a feed category to a topic (repeatable).")
    @click.option("--poll-minutes", type=click.IntRange(1, 10080), default=None,
                  help="How often the scheduler polls this feed (URLs only).")
    def import_feed(source: str, topic: str, pairs: tuple[str, ...], poll_minutes: int | None) -> None:
        """Import an RSS 2.0/Atom feed from a URL (added to the polled feeds) or a file."""
        mapping = _category_map(pairs)
        path = Path(source)
        if not source.lower().startswith(("http://", "https://")):
            if not path.is_file():
                raise click.ClickException(f"{source} is neither an http(s) URL nor a readable file")
            _import_file(path, topic, mapping)
            return
        data: dict[str, object] = {"url": source}
        if topic:
            data["topic"] = topic
        if mapping:
            data["category_map"] = mapping
        if poll_minutes:
            data["poll_minutes"] = poll_minutes
        try:
            feed = save_feed(db.session, data)
        except ValidationError as exc:
            raise click.ClickException(exc.message) from exc
        result = poll_feed(db.session, feed.id,
                           allow_private=runtime().settings.allow_private_urls)
        db.session.refresh(feed)
        if result is None:
            raise click.ClickException(f"feed {feed.id} {source}: {feed.last_error}")
        if result.not_modified:
            click.echo(f"feed {feed.id}: not modified since the last fetch")
        else:
            click.echo(f"feed {feed.id}: {result.imported} item(s) imported, {result.created} new; "
                       f"polled every {feed.poll_minutes} min")

    @app.cli.command("feeds")
    def list_feeds() -> None:
        """List feeds with their last fetch status."""
        for feed in db.session.scalars(select(Feed).order_by(Feed.id)):
            when = feed.last_fetched_at.strftime("%Y-%m-%d %H:%M") if feed.last_fetched_at else "never"
            line = f"{feed.id:4} {feed.last_status:6} {when:16} {feed.last_imported:4} {feed.url}"
            click.echo(line + (f"\n     error: {feed.last_error}" if feed.last_error else ""))


def _import_file(path: Path, topic: str, mapping: dict[str, str]) -> None:
    if path.stat().st_size > MAX_FEED_BYTES:
        raise click.ClickException(f"{path}: larger than the {MAX_FEED_BYTES // 1024} KB limit")
    try:
        check_topics(db.session, [*([topic] if topic else []), *mapping.values()])
        parsed = parse_feed(path.read_bytes())
        result = import_items(db.session, parsed.items, feed=None, topics=[topic] if topic else [],
                                    category_map=mapping)
        db.session.commit()
    except (FeedError, ValidationError) as exc:
        db.session.rollback()
        raise click.ClickException(f"{path}: {getattr(exc, 'message', exc)}; nothing imported") from exc
    click.echo(f"{path}: {result.imported} item(s) imported, {result.created} new")
