"""The JSON API (`Authorization: Bearer <token>`). Thin: parse, call a service, answer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import select

from mailer import content as content_service
from mailer.common import ValidationError, clean_int
from mailer.console import check_token, scope_allows
from mailer.content import digest_json, save_digest
from mailer.editions import cancel_edition, pause_edition, progress, resume_edition, start_edition
from mailer.extensions import csrf, db
from mailer.models import Article, Digest, Topic
from mailer.readers import subscribe
from mailer.runtime import runtime
from mailer.web.openapi import openapi_document

api = Blueprint("api", __name__)
csrf.exempt(api)  # bearer tokens, not cookies: CSRF cannot ride on them


@api.before_request
def authenticate() -> tuple[Response, int] | None:
    """Bearer token, and its scope (capped by its owner's current role): `read`
    for GET, `write` for anything else; admin routes also call require_scope."""
    if request.endpoint == "api.openapi":
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    scope = None
    if scheme.lower() == "bearer":
        scope = check_token(db.session, token.strip(), runtime().settings.api_token)
    if scope is None:
        return jsonify(error="missing or invalid API token",
                       fields={"Authorization": "Bearer token required"}), 401
    g.api_scope = scope
    needed = "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write"
    if not scope_allows(scope, needed):
        return _scope_error(needed)
    return None


def _scope_error(needed: str) -> tuple[Response, int]:
    return jsonify(error=f"this token's scope does not allow this (needs {needed})",
                   fields={"Authorization": f"a token with scope {needed} is required"}), 403


def require_scope(needed: str) -> tuple[Response, int] | None:
    """For admin-only routes: `if (denied := require_scope("admin")): return denied`."""
    return None if scope_allows(g.get("api_scope"), needed) else _scope_error(needed)


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object.", {"body": "not a JSON object"})
    return data


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@api.post("/articles")
def create_article() -> tuple[Response, int]:
    article, created = content_service.upsert_article(db.session, body())
    return jsonify(content_service.article_json(article)), 201 if created else 200


@api.get("/articles")
def list_articles() -> Response:
    limit = clean_int(request.args.get("limit"), "limit", 1, 500, 50)
    rows = db.session.scalars(
        select(Article).order_by(Article.published_at.desc(), Article.id.desc()).limit(limit)
    )
    return jsonify(articles=[content_service.article_json(a) for a in rows])


@api.get("/topics")
def list_topics() -> Response:
    rows = db.session.scalars(select(Topic).order_by(Topic.slug))
    return jsonify(topics=[{"id": t.id, "slug": t.slug, "name": t.name} for t in rows])


@api.post("/topics")
def create_topic() -> tuple[Response, int]:
    data = body()
    topic = content_service.create_topic(db.session, data.get("slug"), data.get("name"))
    return jsonify(id=topic.id, slug=topic.slug, name=topic.name), 201


@api.post("/subscribers")
def create_subscriber() -> tuple[Response, int]:
    data = body()
    confirmed = data.get("confirmed", False)
    if not isinstance(confirmed, bool):
        raise ValidationError("confirmed must be true or false.", {"confirmed": "not a boolean"})
    result = subscribe(
        db.session,
        email=data.get("email"),
        name=data.get("name"),
        topics=data.get("topics"),
        frequency=data.get("frequency"),
        source="api",
        ip=request.remote_addr or "",
        confirmed=confirmed,
    )
    return jsonify(id=result.reader_id, created=result.created,
                   confirmation_sent=result.confirmation_queued), 201 if result.created else 200


@api.get("/digests")
def list_digests() -> Response:
    rows = db.session.scalars(select(Digest).order_by(Digest.id))
    return jsonify(digests=[digest_json(d) for d in rows])


@api.post("/digests")
def create_digest() -> tuple[Response, int]:
    digest = save_digest(db.session, body())
    return jsonify(digest_json(digest)), 201


@api.post("/editions")
def create_edition() -> tuple[Response, int]:
    data = body()
    if "digest" not in data:
        raise ValidationError("digest is required (a digest name or id).", {"digest": "required"})
    edition = start_edition(db.session, data["digest"], created_by="api")
    return jsonify(progress(db.session, edition.id)), 202


@api.get("/editions/<int:edition_id>")
def get_edition(edition_id: int) -> Response:
    return jsonify(progress(db.session, edition_id))


@api.post("/editions/<int:edition_id>/pause")
def pause(edition_id: int) -> Response:
    pause_edition(db.session, edition_id)
    return jsonify(progress(db.session, edition_id))


@api.post("/editions/<int:edition_id>/resume")
def resume(edition_id: int) -> Response:
    resume_edition(db.session, runtime().settings, edition_id)
    return jsonify(progress(db.session, edition_id))


@api.post("/editions/<int:edition_id>/cancel")
def cancel(edition_id: int) -> Response:
    cancel_edition(db.session, edition_id)
    return jsonify(progress(db.session, edition_id))
