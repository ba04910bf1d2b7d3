"""Articles (list, search, add, edit with a preview of the card, delete) and feeds
(add after a first fetch, poll now, mapping, pause, delete) with their status."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from mailer.common import ValidationError
from mailer.console import article_stats
from mailer.content import (
    ArticleCard,
    FirstFetchFailed,
    add_feed,
    article_card,
    create_article,
    delete_feed,
    parse_category_map,
    poll_feed,
    save_feed,
    set_feed_paused,
    upsert_article,
)
from mailer.extensions import db
from mailer.models import Article, Feed, Topic
from mailer.runtime import runtime
from mailer.web.console.auth import editor_required, viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import PAGE_SIZE, field_errors, flash_error, page_number, text_arg


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@console.get("/articles")
@viewer_required
def articles() -> str:
    q = text_arg("q")
    page = page_number()
    query = select(Article)
    if q:
        pattern = _like(q)
        query = query.where(or_(Article.title.ilike(pattern, escape="\\"),
                                Article.url.ilike(pattern, escape="\\")))
    rows = db.session.scalars(query.order_by(Article.published_at.desc(), Article.id.desc())
                              .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    return render_template("console/articles.html", articles=rows[:PAGE_SIZE], q=q, page=page,
                           more=len(rows) > PAGE_SIZE)


ARTICLE_LABELS = {"url": "Address (URL)", "title": "Title", "author": "Author",
                  "summary": "Summary", "body_html": "Body", "image_url": "Image URL",
                  "topics": "Topics", "published_at": "Published"}


def _article(article_id: int) -> Article:
    return db.get_or_404(Article, article_id, description="No such article.")


def _topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.name)))


def _article_values(article: Article | None) -> dict[str, object]:
    if article is None:
        return {"topics": []}
    return {"url": article.url, "title": article.title, "author": article.author,
            "summary": article.summary, "body_html": article.body_html,
            "image_url": article.image_url, "topics": [t.slug for t in article.topics]}


def _typed_article() -> dict[str, object]:
    form = request.form
    return {"url": form.get("url", "").strip(), "title": form.get("title", ""),
            "author": form.get("author", ""), "summary": form.get("summary", ""),
            "body_html": form.get("body_html", ""), "image_url": form.get("image_url", "").strip(),
            "topics": form.getlist("topics")}


def _article_page(article: Article | None, values: dict[str, object], errors: dict[str, str],
                  status: int = 200, preview: ArticleCard | None = None) -> tuple[str, int]:
    if preview is None and not errors:
        try:
            preview = article_card(db.session, values)
        except ValidationError:
            preview = None
    figures = article_stats(db.session, article.id) if article is not None else None
    return render_template("console/article.html", article=article, topics=_topics(),
                           values=values, errors=errors, preview=preview, figures=figures), status


@console.get("/articles/new")
@viewer_required  # viewers see the form, with its buttons disabled
def article_new() -> tuple[str, int]:
    return _article_page(None, {"topics": []}, {})


@console.post("/articles/new")
@editor_required
def article_create() -> Response | tuple[str, int]:
    values = _typed_article()
    try:
        if request.form.get("action") == "preview":
            return _article_page(None, values, {}, preview=article_card(db.session, values))
        article = create_article(db.session, values)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc, ARTICLE_LABELS)
        return _article_page(None, values, field_errors(exc, ARTICLE_LABELS), 422)
    flash("Article added.")
    return redirect(url_for("console.article_edit", article_id=article.id))


@console.get("/articles/<int:article_id>")
@viewer_required
def article_edit(article_id: int) -> tuple[str, int]:
    article = _article(article_id)
    return _article_page(article, _article_values(article), {})


@console.post("/articles/<int:article_id>")
@editor_required
def article_save(article_id: int) -> Response | tuple[str, int]:
    article = _article(article_id)
    values = {**_typed_article(), "url": article.url}
    data = {**values, "image_url": values["image_url"] or None,
            "published_at": article.published_at.isoformat()}
    try:
        if request.form.get("action") == "preview":
            return _article_page(article, values, {}, preview=article_card(db.session, values))
        upsert_article(db.session, data)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc, ARTICLE_LABELS)
        return _article_page(_article(article_id), values, field_errors(exc, ARTICLE_LABELS), 422)
    flash("Article saved.")
    return redirect(url_for("console.article_edit", article_id=article_id))


@console.post("/articles/<int:article_id>/delete")
@editor_required
def article_delete(article_id: int) -> Response:
    article = _article(article_id)
    db.session.delete(article)
    db.session.commit()
    flash("Article deleted.")
    return redirect(url_for("console.articles"))


FEED_LABELS = {"url": "Feed address (URL)", "category_map": "Category → topic mapping",
               "topic": "Default topic", "poll_minutes": "Check every (minutes)",
               "topics": "Default topic"}


def _feed_errors(exc: ValidationError) -> dict[str, str]:
    """Unknown topics come from the mapping (or the default topic): shown beside the mapping."""
    errors = field_errors(exc, FEED_LABELS)
    if "topics" in errors:
        errors.setdefault("category_map", errors.pop("topics"))
    return errors


def _feed(feed_id: int) -> Feed:
    return db.get_or_404(Feed, feed_id, description="No such feed.")


def _feeds_page(values: dict[str, object], errors: dict[str, str], status: int = 200,
                failed: bool = False) -> tuple[str, int]:
    rows = db.session.scalars(select(Feed).order_by(Feed.title, Feed.id)).all()
    return render_template("console/feeds.html", feeds=rows, topics=_topics(), values=values,
                           errors=errors, failed=failed), status


def _typed_feed() -> dict[str, object]:
    form = request.form
    return {"url": form.get("url", "").strip(), "category_map": form.get("category_map", ""),
            "topic": form.get("topic", ""), "poll_minutes": form.get("poll_minutes", "15").strip()}


def _feed_data(values: dict[str, object]) -> dict[str, object]:
    return {"url": values["url"], "category_map": parse_category_map(values["category_map"]),
            "topic": values["topic"], "poll_minutes": values["poll_minutes"] or None}


@console.get("/feeds")
@viewer_required
def feeds() -> tuple[str, int]:
    return _feeds_page({"poll_minutes": "15"}, {})


@console.post("/feeds")
@editor_required
def feed_create() -> Response | tuple[str, int]:
    values = _typed_feed()
    insist = request.form.get("insist") == "yes"
    try:
        feed, result = add_feed(db.session, _feed_data(values), insist=insist,
                              allow_private=runtime().settings.allow_private_urls)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc, FEED_LABELS)
        return _feeds_page(values, _feed_errors(exc), 422,
                           failed=isinstance(exc, FirstFetchFailed))
    if result is None:
        flash(f"Feed saved, but it could not be read: {feed.last_error}. It will be tried again.",
              "error")
    else:
        flash(f"Feed added: {result.imported} item(s) read, {result.created} new article(s).", "ok")
    return redirect(url_for("console.feed_edit", feed_id=feed.id))


def _feed_values(feed: Feed) -> dict[str, object]:
    return {"url": feed.url, "topic": feed.default_topic_slug, "poll_minutes": str(feed.poll_minutes),
            "category_map": "\n".join(f"{k} = {v}" for k, v in sorted(feed.category_map.items()))}


def _feed_page(feed: Feed, values: dict[str, object], errors: dict[str, str],
               status: int = 200) -> tuple[str, int]:
    articles = db.session.scalars(select(Article).where(Article.feed_id == feed.id)
                                  .order_by(Article.published_at.desc()).limit(10)).all()
    return render_template("console/feed.html", feed=feed, topics=_topics(), values=values,
                           errors=errors, articles=articles), status


@console.get("/feeds/<int:feed_id>")
@viewer_required
def feed_edit(feed_id: int) -> tuple[str, int]:
    feed = _feed(feed_id)
    return _feed_page(feed, _feed_values(feed), {})


@console.post("/feeds/<int:feed_id>")
@editor_required
def feed_save(feed_id: int) -> Response | tuple[str, int]:
    feed = _feed(feed_id)
    values = {**_typed_feed(), "url": feed.url}
    try:
        save_feed(db.session, _feed_data(values))
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc, FEED_LABELS)
        return _feed_page(_feed(feed_id), values, _feed_errors(exc), 422)
    flash("Feed saved.", "ok")
    return redirect(url_for("console.feed_edit", feed_id=feed_id))


@console.post("/feeds/<int:feed_id>/poll")
@editor_required
def feed_poll(feed_id: int) -> Response:
    _feed(feed_id)
    result = poll_feed(db.session, feed_id, allow_private=runtime().settings.allow_private_urls)
    feed = _feed(feed_id)
    if result is None:
        flash(f"The feed could not be read: {feed.last_error}", "error")
    elif result.not_modified:
        flash("The feed has not changed since the last check.", "ok")
    else:
        flash(f"Checked: {result.imported} item(s) read, {result.created} new article(s).", "ok")
    return redirect(url_for("console.feed_edit", feed_id=feed_id))


@console.post("/feeds/<int:feed_id>/pause")
@editor_required
def feed_pause(feed_id: int) -> Response:
    paused = request.form.get("paused", "yes") == "yes"
    set_feed_paused(db.session, _feed(feed_id).id, paused)
    flash("Feed paused: it is not checked until you resume it." if paused else
          "Feed resumed: it is checked at the next round.", "ok")
    return redirect(url_for("console.feed_edit", feed_id=feed_id))


@console.post("/feeds/<int:feed_id>/delete")
@editor_required
def feed_delete(feed_id: int) -> Response:
    delete_feed(db.session, _feed(feed_id).id)
    flash("Feed deleted. The articles it brought in stay.", "ok")
    return redirect(url_for("console.feeds"))
