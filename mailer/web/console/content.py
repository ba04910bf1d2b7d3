"""Articles (list, search, edit, delete) and feeds with their last fetch status."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from mailer.common import ValidationError
from mailer.console import article_stats
from mailer.content import upsert_article
from mailer.extensions import db
from mailer.models import Article, Feed, Topic
from mailer.web.console.auth import editor_required, viewer_required
from mailer.web.console.blueprint import console
from mailer.web.console.helpers import PAGE_SIZE, flash_error, page_number, text_arg


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


def _article(article_id: int) -> Article:
    return db.get_or_404(Article, article_id, description="No such article.")


@console.get("/articles/<int:article_id>")
@viewer_required
def article_edit(article_id: int) -> str:
    article = _article(article_id)
    topics = db.session.scalars(select(Topic).order_by(Topic.name)).all()
    return render_template("console/article.html", article=article, topics=topics,
                           figures=article_stats(db.session, article.id))


@console.post("/articles/<int:article_id>")
@editor_required
def article_save(article_id: int) -> Response | tuple[str, int]:
    article = _article(article_id)
    form = request.form
    data = {
        "url": article.url,
        "title": form.get("title"),
        "author": form.get("author"),
        "summary": form.get("summary"),
        "body_html": form.get("body_html"),
        "image_url": form.get("image_url") or None,
        "published_at": article.published_at.isoformat(),
        "topics": form.getlist("topics"),
    }
    try:
        upsert_article(db.session, data)
    except ValidationError as exc:
        db.session.rollback()
        flash_error(exc)
        topics = db.session.scalars(select(Topic).order_by(Topic.name)).all()
        return render_template("console/article.html", article=_article(article_id),
                               topics=topics, figures=article_stats(db.session, article_id)
                               ), exc.status
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


@console.get("/feeds")
@viewer_required
def feeds() -> str:
    rows = db.session.scalars(select(Feed).order_by(Feed.title, Feed.id)).all()
    return render_template("console/feeds.html", feeds=rows)
