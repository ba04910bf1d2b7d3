"""The console's settings page checks the bounce mailbox against a real Dovecot."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.support.dovecot import Dovecot, dovecot_server


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from dovecot_server()


def test_bounce_mailbox_check_shows_success_and_a_wrong_password(editor, rt, dovecot):
    original = rt.settings
    try:
        rt.settings = dataclasses.replace(original, bounce_mailbox=dovecot.url("imaps"))
        page = editor.post("/console/settings/bounce-check").get_data(as_text=True)
        assert 'class="flash ok" data-check="bounces"' in page
        assert "s3cret-pass" not in page
        rt.settings = dataclasses.replace(original,
                                          bounce_mailbox=dovecot.url("imap", password="nope"))
        page = editor.post("/console/settings/bounce-check").get_data(as_text=True)
        assert 'class="flash error" data-check="bounces"' in page
        assert "Authentication failed" in page and "nope" not in page
    finally:
        rt.settings = original


def test_bounce_check_needs_csrf_and_an_editor(viewer, editor):
    assert viewer.post("/console/settings/bounce-check").status_code in (302, 403)
    assert editor.post("/console/settings/bounce-check", csrf=False).status_code == 400
