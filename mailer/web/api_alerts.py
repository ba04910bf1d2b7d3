"""API: breaking-news alerts (one article now, to the readers of its topics who chose alerts)."""

from __future__ import annotations

from mailer.alerts import send_alert
from mailer.extensions import db
from mailer.runtime import runtime
from mailer.web.api import api_blueprint, route
from mailer.web.api_schemas import AlertIn, AlertOut, Error

api_alerts = api_blueprint("api_alerts")


@route(api_alerts, "POST", "/alerts", "Send one article now as a breaking-news alert",
       body=AlertIn, ok={202: AlertOut}, errors={404: Error, 409: Error})
def create_alert(body: AlertIn) -> tuple[AlertOut, int]:
    edition = send_alert(db.session, runtime().settings, body.article, created_by="api")
    return AlertOut(id=edition.id, status=edition.status, planned=edition.planned,  # type: ignore[arg-type]
                    subject=edition.subject), 202
