"""Tracking endpoints: the open pixel and click redirects (see services/tracking.py)."""

from __future__ import annotations

import base64

from flask import Blueprint, Response, abort, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

from mailer.editions import record_open, resolve_click
from mailer.extensions import db
from mailer.runtime import runtime

tracking = Blueprint("tracking", __name__)

# The smallest transparent GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, private, max-age=0", "Pragma": "no-cache"}


@tracking.get("/t/o/<token>.gif", merge_slashes=False)
def open_pixel(token: str) -> Response:
    settings = runtime().settings
    record_open(db.session, settings.secret_key, token, method=request.method,
                headers=dict(request.headers), remote_addr=request.remote_addr or "",
                machine_seconds=settings.machine_open_seconds,
                extra_networks=settings.machine_open_networks)
    # Always the same answer: the pixel tells nobody whether a token was good.
    return Response(PIXEL, mimetype="image/gif", headers=NO_STORE)


# No slash merging: `/t/c//evil.example` is a 404 here, never a redirect of any kind.
@tracking.get("/t/c/<path:token>", merge_slashes=False)
def click(token: str) -> WerkzeugResponse:
    url = resolve_click(db.session, runtime().settings.secret_key, token,
                                method=request.method, headers=dict(request.headers))
    if url is None:
        abort(404, "This link is not known.")
    response = redirect(url, code=302)
    response.headers.update(NO_STORE)
    return response
