"""schemathesis against /api/v1/openapi.json, in process (WSGI), with the bearer
token: whatever it generates for every operation, the API never answers 5xx, and
every answer is one the document declares (status code, content type, body
schema)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from mailer import editions
from mailer.extensions import db
from mailer.models import Delivery, DeliveryStatus
from tests.support import factories

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
AUTH = {"Authorization": "Bearer test-token"}


@schemathesis.serializer("text/csv")
def _csv(ctx, value):  # noqa: ANN001, ANN202 - any generated body, sent as bytes
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def _world(session, rt) -> None:  # noqa: ANN001
    """Rows for the generated ids to hit now and then (ids 1 and 2 exist): an
    edition with a ledger holding sent, failed and unknown rows among them."""
    t = factories.topic(session, "local")
    for n in range(3):
        factories.reader(session, topics=[t])
    factories.article(session, topics=[t])
    factories.digest(session, "Daily", topics=[t])
    factories.digest(session, "Weekly", topics=[t])
    edition = editions.start_edition(session, "Daily")
    editions.prepare_edition(session, rt.settings, edition.id)
    for row, status in zip(session.scalars(select(Delivery).order_by(Delivery.id)),
                           (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)):
        row.status, row.smtp_code, row.error = status, 550, "550 no such user"
    session.commit()


def test_api_answers_conform_and_never_5xx(app, session, rt, dispatch):
    _world(session, rt)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 27
    # Cancelling ends the seeded edition for good: run it after the routes that need it open.
    operations.sort(key=lambda op: op.path.endswith("/cancel"))
    failures: list[str] = []
    calls = 0

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:  # noqa: ANN001
            nonlocal calls
            response = case.call(headers=AUTH)
            calls += 1
            db.session.rollback()  # each case starts from a clean session
            try:
                case.validate_response(response, checks=CHECKS, headers=AUTH)
            except Exception as exc:  # noqa: BLE001 - collected, reported together
                failures.append(f"{case.method} {case.formatted_path} {case.body!r:.200} "
                                f"-> {response.status_code} {response.text[:200]}\n  {exc!s:.600}")

        run()
    print(f"schemathesis: {len(operations)} operations, {calls} calls, {len(failures)} failures")
    assert not failures, "\n".join(failures[:20])
