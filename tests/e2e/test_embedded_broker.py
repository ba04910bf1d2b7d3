"""The embedded broker keeps queued work across worker restarts."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e


def signup(stack, address: str) -> None:  # noqa: ANN001
    web = stack.app.test_client()
    page = web.get("/subscribe").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert web.post("/subscribe", data={"email": address, "csrf_token": csrf}).status_code == 200


def test_messages_queued_while_no_worker_runs_are_delivered_after_restart(stack):
    if stack.name != "embedded":
        pytest.skip("this test is about the embedded broker")
    signup(stack, "early@example.org")  # queued with no worker running
    worker = stack.worker()
    stack.wait(lambda: stack.smtp.handler.to("early@example.org"), 60, "the first confirmation")
    worker.stop()  # a clean restart (SIGTERM)
    signup(stack, "between@example.org")  # queued while the worker is down
    stack.worker(name="worker2")
    stack.wait(lambda: stack.smtp.handler.to("between@example.org"), 60, "the second confirmation")
    assert len(stack.smtp.handler.to("early@example.org")) == 1
