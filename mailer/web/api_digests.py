"""API: digests, their layouts (templates), previews and test sends."""

from __future__ import annotations

import hashlib
from functools import partial

from flask import Response, request
from sqlalchemy import select

from mailer import editions as editions_service
from mailer.console import spend_test_sends
from mailer.content import digest_json, find_digest, save_digest
from mailer.extensions import db
from mailer.mail import digest_layouts
from mailer.models import Digest
from mailer.runtime import runtime
from mailer.web.api import Media, api_blueprint, given, route
from mailer.web.api_schemas import (
    DigestIn,
    DigestList,
    DigestListQuery,
    DigestOut,
    DigestUpdate,
    Error,
    PreviewOut,
    PreviewQuery,
    SendTestIn,
    SendTestOut,
    TemplateList,
    TemplateOut,
)

api_digests = api_blueprint("api_digests")

PREVIEW = (PreviewOut, Media("text/html", "format=html: the email; format=page: the email framed at "
                                          "the chosen width"),
           Media("text/plain", "format=text: the text part"))


def preview_response(preview: editions_service.Preview, query: PreviewQuery) -> PreviewOut | Response:
    if query.format == "html":
        return Response(preview.html, mimetype="text/html")
    if query.format == "text":
        return Response(preview.text, mimetype="text/plain")
    if query.format == "page":
        return Response(editions_service.preview_page(preview, query.width), mimetype="text/html")
    return PreviewOut.model_validate(preview.json())


@route(api_digests, "GET", "/digests", "Digests (archived ones with ?archived=true)",
       query=DigestListQuery, ok={200: DigestList})
def list_digests(query: DigestListQuery) -> DigestList:
    archived = Digest.archived_at.is_not(None) if query.archived else Digest.archived_at.is_(None)
    rows = db.session.scalars(select(Digest).where(archived).order_by(Digest.id))
    return DigestList.model_validate({"digests": [digest_json(d) for d in rows]})


@route(api_digests, "POST", "/digests", "Create a digest", body=DigestIn, ok={201: DigestOut},
       errors={409: Error})
def create_digest(body: DigestIn) -> tuple[DigestOut, int]:
    return DigestOut.model_validate(digest_json(save_digest(db.session, given(body)))), 201


@route(api_digests, "GET", "/digests/<int:digest_id>", "A digest", ok={200: DigestOut})
def get_digest(digest_id: int) -> DigestOut:
    return DigestOut.model_validate(digest_json(find_digest(db.session, digest_id)))


@route(api_digests, "POST", "/digests/<int:digest_id>",
       "Change a digest (only the fields sent change)", body=DigestUpdate, ok={200: DigestOut},
       errors={409: Error})
def update_digest(digest_id: int, body: DigestUpdate) -> DigestOut:
    digest = find_digest(db.session, digest_id)
    return DigestOut.model_validate(digest_json(save_digest(db.session, given(body), digest)))


@route(api_digests, "GET", "/digests/<int:digest_id>/preview",
       "Preview the next edition (JSON, HTML, text or a framed page)",
       query=PreviewQuery, ok={200: PREVIEW})
def preview_digest(digest_id: int, query: PreviewQuery) -> PreviewOut | Response:
    return preview_response(
        editions_service.preview_digest(db.session, runtime().settings, digest_id), query)


@route(api_digests, "POST", "/digests/<int:digest_id>/test-send",
       "Send a test copy to up to 10 addresses (no ledger rows, no edition)",
       body=SendTestIn, ok={200: SendTestOut})
def test_send(digest_id: int, body: SendTestIn) -> SendTestOut:
    rt = runtime()
    # Capped per token (hashed) per hour, across processes.
    actor = "api:" + hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()[:16]
    results = editions_service.test_send(db.session, rt.settings, rt.sender(), digest_id,
                                         body.addresses,
                                         spend=partial(spend_test_sends, rt.settings, actor))
    return SendTestOut(results=results)


@route(api_digests, "GET", "/templates",
       "The layouts a digest may use (transactional emails' templates are never listed)",
       ok={200: TemplateList})
def list_templates() -> TemplateList:
    default = Digest.__table__.c.template.default.arg  # the layout a new digest gets
    return TemplateList(templates=[TemplateOut(name=name, default=name == default)
                                   for name in digest_layouts()])
