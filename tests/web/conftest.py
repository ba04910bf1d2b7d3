from __future__ import annotations

import re

import pytest


@pytest.fixture(autouse=True)
def _no_signup_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    # The constant-time padding is behaviour for production; unit tests skip the wait.
    monkeypatch.setenv("MAILER_SIGNUP_MIN_SECONDS", "0")


def csrf_from(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
