"""The audit log: every successful state-changing console request and API call,
plus exports, recorded after the fact; admins read it at /console/audit and
download it as CSV."""

from __future__ import annotations

import logging

from flask import Response, g, render_template, request, stream_with_context
from flask_login import current_user

from mailer.console import audit
from mailer.extensions import db
from mailer.web.console.auth import admin_required
from mailer.web.console.blueprint import console

log = logging.getLogger(__name__)

# Reads that hand data out: recorded like changes.
EXPORT_ENDPOINTS = {"console.audit_export", "api_readers.export_subscribers"}
UNCHANGING = ("GET", "HEAD", "OPTIONS")


@console.before_app_request
def remember_actor() -> None:
    # Logout forgets the user before the response: note who it was first.
    if request.blueprint == "console" and current_user.is_authenticated:
        g.audit_actor = (current_user.id, current_user.email)


@console.after_app_request
def record_action(response: Response) -> Response:
    endpoint = request.endpoint or ""
    if response.status_code >= 400 or (request.method in UNCHANGING
                                       and endpoint not in EXPORT_ENDPOINTS):
        return response
    try:
        if request.blueprint == "console":
            if current_user.is_authenticated:
                editor_id, actor = current_user.id, current_user.email
            elif g.get("audit_actor"):
                editor_id, actor = g.audit_actor
            else:
                return response
        elif request.path.startswith("/api/"):
            token = request.headers.get("Authorization", "").partition(" ")[2].strip()
            editor_id, actor = None, f"API token {token[:10]}…"
        else:
            return response
        target = ", ".join(f"{k}={v}" for k, v in (request.view_args or {}).items())
        detail = audit.kept(request.form) if request.form else {}
        audit.record(db.session, endpoint, editor_id=editor_id, actor=actor, target=target,
                     detail=detail, ip=request.remote_addr or "")
    except Exception:
        db.session.rollback()
        log.exception("could not record %s in the audit log", endpoint)
    return response


@console.get("/audit")
@admin_required
def audit_log() -> str:
    action = str(request.args.get("action", ""))[:80]
    return render_template("console/audit.html", events=audit.recent(db.session, 200, action),
                           action=action)


@console.get("/audit.csv")
@admin_required
def audit_export() -> Response:
    return Response(stream_with_context(audit.export_csv(db.session)), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'})
