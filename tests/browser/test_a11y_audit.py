"""The audit used by the browser journeys finds what it claims to find."""

from __future__ import annotations

import pytest

from tests.support.a11y import audit

pytestmark = pytest.mark.browser

BAD = """<html><head><title> </title></head><body>
<h1>One</h1><h1>Two</h1>
<input name="email"><button></button><img src="data:,"><p id="x"></p><p id="x"></p>
</body></html>"""
GOOD = """<html lang="en"><head><title>Fine</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>
<h1>Fine</h1><label for="e">Email</label><input id="e" name="email">
<button>Go</button><img src="data:," alt=""></body></html>"""


def test_audit_reports_each_kind_of_problem(chromium):
    page = chromium.new_page()
    page.set_content(BAD)
    problems = audit(page)
    for expected in ("html has no lang", "page has no title", "no responsive viewport meta",
                     "2 h1 elements", "unlabelled input name=email", "button without a name",
                     "img without alt", "id x used 2 times"):
        assert any(expected in p for p in problems), (expected, problems)
    page.set_content(GOOD)
    assert audit(page) == []
    page.close()
