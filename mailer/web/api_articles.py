"""API: articles and topics."""

from __future__ import annotations

from sqlalchemy import select

from mailer import content as content_service
from mailer.extensions import db
from mailer.models import Article, Topic
from mailer.web.api import api_blueprint, given, route
from mailer.web.api_schemas import (
    ArticleIn,
    ArticleList,
    ArticleOut,
    ArticlesQuery,
    Error,
    TopicIn,
    TopicList,
    TopicOut,
)

api_articles = api_blueprint("api_articles")


@route(api_articles, "POST", "/articles", "Create or update an article (idempotent on url)",
       body=ArticleIn, ok={201: ArticleOut, 200: ArticleOut}, errors={409: Error})
def create_article(body: ArticleIn) -> tuple[ArticleOut, int]:
    article, created = content_service.upsert_article(db.session, given(body))
    return ArticleOut.model_validate(content_service.article_json(article)), 201 if created else 200


@route(api_articles, "GET", "/articles", "Recent articles, newest first",
       query=ArticlesQuery, ok={200: ArticleList})
def list_articles(query: ArticlesQuery) -> ArticleList:
    rows = db.session.scalars(
        select(Article).order_by(Article.published_at.desc(), Article.id.desc()).limit(query.limit)
    )
    return ArticleList.model_validate({"articles": [content_service.article_json(a) for a in rows]})


@route(api_articles, "GET", "/topics", "Topics", ok={200: TopicList})
def list_topics() -> TopicList:
    rows = db.session.scalars(select(Topic).order_by(Topic.slug))
    return TopicList(topics=[TopicOut(id=t.id, slug=t.slug, name=t.name) for t in rows])


@route(api_articles, "POST", "/topics", "Create a topic", body=TopicIn, ok={201: TopicOut},
       errors={409: Error})
def create_topic(body: TopicIn) -> tuple[TopicOut, int]:
    topic = content_service.create_topic(db.session, body.slug, body.name)
    return TopicOut(id=topic.id, slug=topic.slug, name=topic.name), 201
