"""The signup proof of work on its own: issue, check, spend once (issue 15)."""

from __future__ import annotations

import time
import uuid

import pytest

from mailer.common import ChallengeError, SignupGuard
from mailer.common import challenge as pow_
from mailer.common.limits_storage import storage_uri
from tests.support import services

KEY = "test-secret"


def _reason(value: object, solution: object, key: str = KEY) -> str:
    with pytest.raises(ChallengeError) as refused:
        pow_.check(key, value, solution)
    return refused.value.reason


def test_a_solved_challenge_checks_out():
    challenge = pow_.issue(KEY, 5000)
    answer = pow_.solve(challenge)
    spend_key, keep = pow_.check(KEY, challenge.value, str(answer))
    assert spend_key == challenge.salt.rsplit(".", 1)[1]
    assert pow_.TTL_SECONDS < keep <= pow_.TTL_SECONDS + 60
    assert 0 <= answer <= 5000
    assert challenge.as_json()["max"] == 5000


def test_wrong_forged_expired_and_malformed_are_told_apart():
    challenge = pow_.issue(KEY, 5000, number=1234)
    assert _reason(challenge.value, "1235") == "wrong"
    assert _reason(challenge.value, "5001") == "wrong"  # beyond the maximum
    assert _reason(challenge.value, "abc") == "wrong"
    assert _reason(challenge.value, "١٢٣٤") == "wrong"  # non-ASCII digits int() would take
    assert _reason(challenge.value, "1234", key="another-secret") == "forged"
    # Easier puzzle, same signature: the size is signed with the rest.
    salt, digest, signature = challenge.value.split(":")
    expires, _max, rand = salt.split(".")
    easier = f"{expires}.10.{rand}:{digest}:{signature}"
    assert _reason(easier, "5") == "forged"
    later = f"{int(expires) + 9999}.{_max}.{rand}:{digest}:{signature}"
    assert _reason(later, "1234") == "forged"
    old = pow_.issue(KEY, 5000, now=time.time() - pow_.TTL_SECONDS - 1, number=7)
    assert _reason(old.value, "7") == "expired"
    assert _reason("", "") == "missing"
    assert _reason(None, None) == "missing"
    assert _reason(challenge.value, "") == "missing"  # the page's script never ran
    for value in ("x", challenge.value + "0", challenge.value.upper(), "9" * 10_000,
                  challenge.value.replace(":", ";"), "\ud800" + challenge.value, ["list"]):
        assert _reason(value, "1234") == "malformed"
    assert _reason(challenge.value, "1" * 50) == "malformed"
    assert _reason(challenge.value, "\ud800") == "wrong"


def test_the_server_side_check_is_cheap():
    challenge = pow_.issue(KEY, 50_000, number=49_999)
    started = time.perf_counter()
    for _ in range(1000):
        pow_.check(KEY, challenge.value, "49999")
    assert time.perf_counter() - started < 1.0  # two hashes each, not a search


@pytest.fixture(params=["sqlite-file", "redis"])
def spent_store(request, tmp_path) -> str:
    if request.param == "redis":
        services.require("redis")
        return services.REDIS_URL
    return storage_uri(tmp_path / "ratelimits.sqlite")


def test_a_solution_is_spent_once_across_guards(spent_store):
    """Two guards on one store stand for two web processes."""
    first = SignupGuard(KEY, "always", 2000, spent_store, "")
    second = SignupGuard(KEY, "always", 2000, spent_store, "")
    challenge = first.issue()
    answer = str(pow_.solve(challenge))
    first.verify(challenge.value, answer)
    for guard in (first, second):
        with pytest.raises(ChallengeError) as refused:
            guard.verify(challenge.value, answer)
        assert refused.value.reason == "spent"
    another = second.issue()
    second.verify(another.value, str(pow_.solve(another)))


def test_auto_asks_once_half_a_window_is_used(tmp_path):
    from limits import parse
    from limits.strategies import FixedWindowRateLimiter

    uri = storage_uri(tmp_path / "ratelimits.sqlite")
    guard = SignupGuard(KEY, "auto", 2000, uri, "4 per minute;100 per hour")
    window = FixedWindowRateLimiter(guard.storage)
    ip = f"10.0.{uuid.uuid4().int % 250}.1"
    assert not guard.required(ip, counted=False)
    window.hit(parse("4 per minute"), ip, pow_.SIGNUP_SCOPE)
    assert not guard.required(ip, counted=False)
    assert not guard.required(ip, counted=True)  # the request being counted is left out
    window.hit(parse("4 per minute"), ip, pow_.SIGNUP_SCOPE)
    assert guard.required(ip, counted=False)
    assert not guard.required(ip, counted=True)
    assert not guard.required("10.255.0.1", counted=False)  # per address
    assert SignupGuard(KEY, "always", 2000, uri, "").required(ip, counted=False)
    assert not SignupGuard(KEY, "off", 2000, uri, "4 per minute").required(ip, counted=False)


def test_a_storage_outage_is_no_server_error(tmp_path):
    """Redis gone: no challenge is asked for by `auto`, and a solved one still counts."""
    guard = SignupGuard(KEY, "auto", 2000, "redis://127.0.0.1:1/0", "4 per minute")
    assert not guard.required("10.0.0.1", counted=False)
    challenge = guard.issue()
    guard.verify(challenge.value, str(pow_.solve(challenge)))
    with pytest.raises(ChallengeError):
        guard.verify(challenge.value, "not a number")
