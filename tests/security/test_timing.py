"""Timing does not tell known addresses from unknown ones (issue 15).

Statistical: 200+ interleaved samples per group, compared with a Mann-Whitney
U test; a difference fails only if it is both significant and large enough to
matter (over 10% of the median), so a noisy shared machine does not fail it.
Password hashes use cheap scrypt parameters (the same for the account and the
dummy hash) so the test takes seconds; a second scrypt for unknown addresses,
the bug this guards against, still doubles their time.
"""

from __future__ import annotations

import math
import statistics
import time

import pytest
from sqlalchemy import delete
from werkzeug.security import generate_password_hash

from mailer.common.tokens import Purpose
from mailer.console import login_guard
from mailer.models import Editor, LoginThrottle
from mailer.readers import reader_link_token
from tests.support import factories
from tests.web.conftest import csrf_from

pytestmark = pytest.mark.timing
SAMPLES = 200
CHEAP = "scrypt:1024:8:1"


def mann_whitney_z(a: list[float], b: list[float]) -> float:
    ranked = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(ranked)
    i = 0
    while i < len(ranked):  # average ranks of ties
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    r_a = sum(r for r, (_, group) in zip(ranks, ranked) if group == 0)
    n_a, n_b = len(a), len(b)
    u = r_a - n_a * (n_a + 1) / 2
    mean = n_a * n_b / 2
    sd = math.sqrt(n_a * n_b * (n_a + n_b + 1) / 12)
    return (u - mean) / sd


def assert_same_time(a: list[float], b: list[float]) -> None:
    z = mann_whitney_z(a, b)
    ma, mb = statistics.median(a), statistics.median(b)
    effect = abs(ma - mb) / min(ma, mb)
    assert not (abs(z) > 4 and effect > 0.10), (
        f"medians {ma * 1000:.2f} ms vs {mb * 1000:.2f} ms, z={z:.1f}")


def test_login_takes_the_same_time_for_known_and_unknown_addresses(session, monkeypatch):
    account = Editor(email="known@news.example.org", role="editor",
                     password_hash=generate_password_hash("correct horse battery", method=CHEAP))
    session.add(account)
    session.commit()
    dummy = generate_password_hash("whatever", method=CHEAP)
    monkeypatch.setattr(login_guard, "dummy_hash", lambda: dummy)
    known: list[float] = []
    unknown: list[float] = []
    for n in range(SAMPLES * 2):
        # The per-address throttle is not what is measured here: start each try fresh.
        session.execute(delete(LoginThrottle))
        session.commit()
        email = "known@news.example.org" if n % 2 else f"nobody{n}@news.example.org"
        started = time.perf_counter()
        result = login_guard.attempt_login(session, email, "wrong password!")
        (known if n % 2 else unknown).append(time.perf_counter() - started)
        assert result.editor is None
    assert_same_time(known, unknown)


def test_change_of_address_takes_the_same_time_whatever_the_address(client, session, rt):
    factories.reader(session, "taken@example.org")
    reader = factories.reader(session, "asker@example.org")
    url = f"/preferences/{reader_link_token(rt.tokens, Purpose.PREFERENCES, reader)}"
    csrf = csrf_from(client.get(url).get_data(as_text=True))
    free: list[float] = []
    taken: list[float] = []
    for n in range(SAMPLES * 2):
        new = "taken@example.org" if n % 2 else f"free{n}@example.org"
        started = time.perf_counter()
        answer = client.post(url, data={"csrf_token": csrf, "action": "change-email",
                                        "new_email": new})
        (taken if n % 2 else free).append(time.perf_counter() - started)
        assert answer.status_code == 200
    assert_same_time(free, taken)
