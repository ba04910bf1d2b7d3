"""A generated corpus of hostile values for every public form: never a 5xx, and no
CR/LF or other control character ever stored in a reader column."""

from __future__ import annotations

import re
from urllib.parse import quote_from_bytes

from sqlalchemy import select

from mailer.common import challenge as pow_
from mailer.common.tokens import Purpose
from mailer.models import Reader
from mailer.readers import reader_link_token
from tests.support import factories
from tests.web.conftest import csrf_from

# Raw bytes, so that invalid UTF-8 reaches the server exactly as sent.
HOSTILE: list[bytes] = [
    b"",
    b" ",
    b"a" * 10_000,
    ("x" * 70 + "@" + "d" * 250 + ".org").encode(),
    b"a@example.org\r\nBcc: victim@example.org",
    b"a@example.org\nSubject: hi",
    b"Ann\r\nX-Injected: 1",
    b"Ann\x00Nul",
    b"\x07\x08\x0b\x0c\x1b[31mred\x7f",
    b"\xff\xfe\xfd",
    b"caf\xc3",  # truncated UTF-8
    b"\xc0\xafetc",  # overlong encoding
    b"\xed\xa0\x80",  # a UTF-16 surrogate in UTF-8
    "\u0430dmin@ex\u0430mple.org".encode(),  # Cyrillic look-alikes
    "ad\u200bmin@example.org".encode(),  # zero-width space
    "\u202eevil\u202c@example.org".encode(),  # bidi override
    "\uff41@\uff45xample.org".encode(),  # full-width letters
    "ﬁ@example.org".encode(),
    b"' OR '1'='1",
    b"x@example.org'; DROP TABLE readers; --",
    b"\" UNION SELECT * FROM suppressions --",
    b"<script>alert(1)</script>@example.org",
    b"<img src=x onerror=alert(1)>",
    b"{{ 7*7 }} %%email%% {% raw %}",
    b"%(name)s %s %n",
    b"../../etc/passwd",
    b"=HYPERLINK(\"http://evil\")",
    b"-1",
    b"99999999999999999999999",
    "😀" .encode() * 100,
    b"a@[127.0.0.1]",
    b"\"quoted local\"@example.org",
    b"a@localhost",
]

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def body(fields: dict[str, bytes | str | list]) -> bytes:
    parts = []
    for key, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            raw = v.encode() if isinstance(v, str) else v
            parts.append(f"{key}=".encode() + quote_from_bytes(raw).encode())
    return b"&".join(parts)


def post(client, path: str, fields: dict) -> int:
    r = client.post(path, data=body(fields), content_type="application/x-www-form-urlencoded")
    return r.status_code


def assert_clean(session) -> None:
    session.expire_all()
    for reader in session.scalars(select(Reader)):
        for column in ("email", "email_key", "name", "status", "frequency", "confirm_nonce",
                       "consent_source", "consent_ip", "pending_email"):
            value = getattr(reader, column) or ""
            assert not CONTROL.search(value), (column, value[:80])


def test_signup_forms_survive_hostile_values(client, session, dispatch):
    factories.topic(session, "local")
    token = csrf_from(client.get("/subscribe").get_data(as_text=True))
    statuses = set()
    for value in HOSTILE:
        for field in ("email", "name", "topics", "frequency", "source"):
            fields = {"email": "ok@example.org", "name": "Ok", "topics": "local",
                      "frequency": "daily", "source": "corpus", "csrf_token": token, field: value}
            for path in ("/subscribe", "/subscribe/embed"):
                status = post(client, path, fields)
                assert status < 500, (path, field, value[:40])
                statuses.add(status)
        status = post(client, "/link", {"email": value, "csrf_token": token})
        assert status < 500, ("/link", value[:40])
        statuses.add(status)
        # A well-formed address paired with a hostile name must be stored cleaned.
        status = post(client, "/subscribe", {"email": f"n{len(value)}@example.org", "name": value,
                                             "source": value, "csrf_token": token})
        assert status < 500
    assert statuses <= {200, 413, 422}
    assert_clean(session)


def test_preference_forms_survive_hostile_values(client, session, rt, dispatch):
    factories.topic(session, "local")
    reader = factories.reader(session, "prefs@example.org")
    url = f"/preferences/{reader_link_token(rt.tokens, Purpose.PREFERENCES, reader)}"
    token = csrf_from(client.get(url).get_data(as_text=True))
    for value in HOSTILE:
        for fields in (
            {"action": "save", "name": value, "topics": "local", "frequency": "weekly"},
            {"action": "save", "name": "Ok", "topics": value, "frequency": "weekly"},
            {"action": "save", "name": "Ok", "frequency": value},
            {"action": "change-email", "new_email": value},
            {"action": value},
            {"action": "erase", "confirm_erase": value},
        ):
            status = post(client, url, {**fields, "csrf_token": token})
            assert status < 500, (fields, value[:40])
            assert status in (200, 400, 413, 422)
    assert_clean(session)
    assert session.get(Reader, reader.id) is not None  # no hostile value erased it


def test_token_routes_survive_hostile_paths(client, session):
    for value in HOSTILE:
        token = quote_from_bytes(value, safe="") or "x"
        for method, prefix in (("GET", "/confirm/"), ("GET", "/unsubscribe/"), ("POST", "/unsubscribe/"),
                               ("GET", "/preferences/"), ("POST", "/preferences/"),
                               ("GET", "/change-email/")):
            r = client.open(prefix + token, method=method)
            assert r.status_code < 500 and r.status_code in (400, 404, 405), (prefix, value[:40])


CHALLENGE_HOSTILE: list[bytes] = [
    *HOSTILE,
    b"9" * 100_000,  # huge
    b"1e5", b"0x10", b"+1", b" 12 ", b"1_000", b"NaN", b"-0", b"\xd9\xa1\xd9\xa2",  # Arabic-Indic digits
    b"\xed\xb0\x80", b"\xed\xa0\x80\xed\xb0\x80",  # lone and paired surrogates in UTF-8
    b"%ud800", b"\\ud800",
    b"9999999999.99999999.000000000000000000000000:" + b"0" * 64 + b":" + b"0" * 64,
    b"::", b":::::::::", b"." * 300,
]


def test_hostile_challenge_values_are_refused_without_a_5xx(client, session, dispatch,
                                                             settings_override):
    settings_override(signup_challenge="always", signup_challenge_difficulty=2000)
    page = client.get("/subscribe").get_data(as_text=True)
    token = csrf_from(page)
    good = re.search(r'name="challenge" value="([^"]+)"', page).group(1)
    salt, digest, _ = good.split(":")
    answer = pow_.solve(pow_.Challenge(salt, digest, "", 2000, 0))
    wrong = str((answer + 1) % 2001)
    for value in CHALLENGE_HOSTILE:
        if value.strip() == str(answer).encode():
            continue  # the right answer, by chance
        for fields in ({"challenge": value, "solution": wrong},
                       {"challenge": good, "solution": value},
                       {"challenge": value, "solution": value},
                       {"challenge": [good, value], "solution": [wrong, value]}):
            for path in ("/subscribe", "/subscribe/embed"):
                status = post(client, path, {"email": "pow@example.org", "csrf_token": token,
                                             **fields})
                assert status in (413, 422), (path, fields, status)
    session.expire_all()
    assert session.scalars(select(Reader)).all() == []
