"""schemathesis against /api/v1/openapi.json, in process (WSGI), with the bearer
token: whatever it generates for every operation, the API never answers 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from mailer.extensions import db


@schemathesis.serializer("text/csv")
def _csv(ctx, value):  # noqa: ANN001, ANN202 - any generated body, sent as bytes
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def test_api_never_answers_5xx(app, dispatch):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    failures: list[str] = []
    calls = 0

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:  # noqa: ANN001
            nonlocal calls
            response = case.call(headers={"Authorization": "Bearer test-token"})
            calls += 1
            db.session.rollback()  # each case starts from a clean session
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r:.200} "
                                f"-> {response.status_code} {response.text[:200]}")

        run()
    print(f"schemathesis: {len(operations)} operations, {calls} calls, {len(failures)} server errors")
    assert not failures, "\n".join(failures[:20])
