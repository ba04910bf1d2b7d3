"""Outgoing webhooks: outbox rows written with the change, signed calls to a real
HTTP server, retries, disabling, and a hanging endpoint that blocks nobody."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update

from mailer import webhooks
from mailer.common import ValidationError, urlsafety
from mailer.jobs import TaskName
from mailer.models import WebhookEndpoint, WebhookMessage, WebhookStatus, utcnow
from mailer.readers import erase_reader, subscribe
from mailer.webhooks import sending
from tests.support.webhook_server import webhook_receiver


def _endpoint(session, url, events=("reader.subscribed", "reader.confirmed")):  # type: ignore[no-untyped-def]
    return webhooks.create_endpoint(session, {"url": url, "events": list(events)},
                                    allow_private=True)


def _messages(session):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.scalars(select(WebhookMessage).order_by(WebhookMessage.id)).all()


def _make_due(session):  # type: ignore[no-untyped-def]
    session.execute(update(WebhookMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    session.commit()


def test_events_are_written_in_the_transaction_and_delivered_signed(session, dispatch):
    with webhook_receiver() as receiver:
        endpoint = _endpoint(session, receiver.url)
        receiver.secret = endpoint.secret
        assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) >= 6 + 32
        rid = subscribe(session, email="hook@example.org", confirmed=True).reader_id
        assert [m.event_type for m in _messages(session)] == ["reader.subscribed", "reader.confirmed"]
        assert TaskName.SEND_WEBHOOKS in dispatch.names()
        report = webhooks.deliver_due(session, allow_private=True)
        assert report.sent == 2
        calls = receiver.received()
        assert [c["json"]["type"] for c in calls] == ["reader.subscribed", "reader.confirmed"]
        assert all(c["valid"] for c in calls)
        assert calls[1]["json"]["data"]["reader"] == {"id": rid, "email": "hook@example.org",
                                                      "status": "confirmed"}
        assert calls[0]["headers"]["webhook-id"].startswith("msg_")
        assert abs(int(calls[0]["headers"]["webhook-timestamp"]) - time.time()) < 60
        assert calls[0]["json"]["timestamp"].endswith("Z")
        assert {m.status for m in _messages(session)} == {WebhookStatus.SENT}


def test_a_rolled_back_change_leaves_no_event(session, dispatch):
    _endpoint(session, "http://127.0.0.1:9/hook", ["reader.erased"])
    rid = subscribe(session, email="gone@example.org", confirmed=True).reader_id
    erase_reader(session, rid)
    assert [m.event_type for m in _messages(session)] == ["reader.erased"]
    subscribe(session, email="other@example.org")
    session.rollback()
    assert len(_messages(session)) == 1


def test_unwanted_events_and_disabled_endpoints_get_nothing(session, dispatch):
    endpoint = _endpoint(session, "http://127.0.0.1:9/hook", ["edition.started"])
    subscribe(session, email="x@example.org")
    assert _messages(session) == []
    assert TaskName.SEND_WEBHOOKS not in dispatch.names()
    webhooks.set_endpoint_enabled(session, endpoint.id, False)


def test_failures_retry_with_the_same_id_until_success(session, dispatch):
    with webhook_receiver([500, 500, 200]) as receiver:
        endpoint = _endpoint(session, receiver.url)
        receiver.secret = endpoint.secret
        subscribe(session, email="r@example.org")
        assert webhooks.deliver_due(session, allow_private=True).retry == 1
        message = _messages(session)[0]
        assert message.status == WebhookStatus.RETRY and message.last_status == 500
        assert message.next_attempt_at > utcnow()
        assert webhooks.deliver_due(session, allow_private=True).sent == 0  # not due yet
        _make_due(session)
        webhooks.deliver_due(session, allow_private=True)
        _make_due(session)
        assert webhooks.deliver_due(session, allow_private=True).sent == 1
        calls = receiver.received()
        assert len(calls) == 3
        assert len({c["headers"]["webhook-id"] for c in calls}) == 1
        assert all(c["valid"] for c in calls)
        assert _messages(session)[0].attempts == 3


def test_persistent_failure_gives_up_and_disables_the_endpoint(session, dispatch):
    with webhook_receiver([500]) as receiver:
        endpoint = _endpoint(session, receiver.url)
        subscribe(session, email="dead@example.org")
        for _ in range(len(sending.RETRY_SCHEDULE) + 1):
            _make_due(session)
            webhooks.deliver_due(session, allow_private=True)
            session.execute(update(WebhookEndpoint).values(
                failing_since=utcnow() - timedelta(hours=30)))
            session.commit()
        message = _messages(session)[0]
        assert message.status == WebhookStatus.FAILED
        assert message.attempts == len(sending.RETRY_SCHEDULE) + 1
        session.refresh(endpoint)
        assert not endpoint.enabled
        assert "HTTP 500" in endpoint.disabled_reason
        # Sent again from the console: due at once, same id, endpoint back on.
        webhooks.set_endpoint_enabled(session, endpoint.id, True)
        receiver.answers = [200]
        webhooks.send_again(session, message.id)
        assert webhooks.deliver_due(session, allow_private=True).sent == 1


def test_a_hanging_endpoint_does_not_block_another(session, dispatch, monkeypatch):
    monkeypatch.setattr(sending, "CALL_TIMEOUT", 1.0)
    post = lambda url, body, headers, allow_private: webhooks.http._post(  # noqa: E731
        url, body, headers, allow_private, timeout=1.0)
    with webhook_receiver(["hang"]) as slow, webhook_receiver([200]) as fast:
        _endpoint(session, slow.url)
        good = _endpoint(session, fast.url)
        fast.secret = good.secret
        for n in range(3):
            subscribe(session, email=f"h{n}@example.org")
        started = time.monotonic()
        report = webhooks.deliver_due(session, allow_private=True, post=post)
        elapsed = time.monotonic() - started
        assert report.sent == 3
        assert len(fast.received()) == 3 and all(c["valid"] for c in fast.received())
        assert fast.received()[-1]["at"] - started < 0.9  # done before the slow one timed out
        assert len(slow.received()) == 1  # stopped at its first failure for this round
        assert elapsed < 5
        slow_rows = [m for m in _messages(session) if m.endpoint_id != good.id]
        assert {m.status for m in slow_rows} == {WebhookStatus.RETRY}
        assert all(m.next_attempt_at > utcnow() for m in slow_rows)


def test_private_addresses_are_refused_unless_allowed(session):
    for url in ("http://127.0.0.1/x", "http://10.1.2.3/x", "http://169.254.169.254/latest",
                "http://[::1]/x", "http://localhost/x", "ftp://example.org/x", "not a url"):
        with pytest.raises(ValidationError) as caught:
            webhooks.create_endpoint(session, {"url": url, "events": ["reader.confirmed"]},
                                     allow_private=False)
        assert "url" in caught.value.fields
    result = webhooks.http._post("http://127.0.0.1:9/x", b"{}", {}, False)
    assert result.status is None and result.error == f"refused: {urlsafety.REFUSED}"
    assert session.scalars(select(WebhookEndpoint)).all() == []


def test_only_redirects_that_keep_the_post_are_followed(session, dispatch):
    hits: list[tuple[str, str, bytes]] = []

    class Redirect(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            hits.append((self.command, self.path, self.rfile.read(length)))
            if self.path.startswith("/moved"):
                status, target = int(self.path.rsplit("/", 1)[1]), "/final"
                self.send_response(status)
                self.send_header("Location", target)
            else:
                self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _answer  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for status in (307, 308):
            hits.clear()
            result = webhooks.http._post(f"{base}/moved/{status}", b'{"a":1}', {}, True)
            assert result.ok and result.status == 204
            assert hits == [("POST", f"/moved/{status}", b'{"a":1}'), ("POST", "/final", b'{"a":1}')]
        for status in (301, 302, 303):  # these would turn the call into a GET without the event
            hits.clear()
            result = webhooks.http._post(f"{base}/moved/{status}", b"{}", {}, True)
            assert result.status == status and not result.ok
            assert "not followed" in result.error and "307 and 308" in result.error
            assert [h[1] for h in hits] == [f"/moved/{status}"]
    finally:
        server.shutdown()
        server.server_close()


def test_signature_matches_the_specification_example():
    # The example of the Standard Webhooks specification (simple signature).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    body = '{"test": 2432232314}'
    assert webhooks.sign(secret, msg_id, 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_finished_calls_are_purged_after_30_days(session, dispatch):
    _endpoint(session, "http://127.0.0.1:9/hook", ["reader.subscribed"])
    subscribe(session, email="old@example.org")
    subscribe(session, email="new@example.org")
    old, new = _messages(session)
    session.execute(update(WebhookMessage).values(status=WebhookStatus.SENT))
    session.execute(update(WebhookMessage).where(WebhookMessage.id == old.id)
                    .values(created_at=utcnow() - timedelta(days=31)))
    session.commit()
    assert webhooks.purge_finished(session) == 1
    assert [m.id for m in _messages(session)] == [new.id]
