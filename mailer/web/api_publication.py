"""API: the publication's identity (name, logo, colour, website, postal address,
language), read by any token and changed by an admin's."""

from __future__ import annotations

from flask import Response, jsonify

from mailer.console import publication_json, update_publication
from mailer.extensions import db
from mailer.readers import load_publication
from mailer.runtime import runtime
from mailer.web.api import api_blueprint, given, require_scope, route
from mailer.web.api_schemas import Error, PublicationIn, PublicationOut

api_publication = api_blueprint("api_publication")


@route(api_publication, "GET", "/publication", "The publication settings (effective values)",
       ok={200: PublicationOut})
def get_publication() -> PublicationOut:
    return PublicationOut.model_validate(
        publication_json(load_publication(db.session, runtime().settings)))


@route(api_publication, "PUT", "/publication", "Change publication settings (admin token)",
       body=PublicationIn, ok={200: PublicationOut}, errors={403: Error, 422: Error})
def put_publication(body: PublicationIn) -> PublicationOut | tuple[Response, int]:
    settings = runtime().settings
    if require_scope("admin") is not None:
        return jsonify(error="only an admin's token may change the publication settings",
                       fields={"Authorization": "admin token required"}), 403
    updated = update_publication(db.session, settings, given(body), updated_by="api")
    return PublicationOut.model_validate(publication_json(updated))
