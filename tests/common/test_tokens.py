"""Compact reader tokens (unsubscribe, preferences): cheap, single-purpose, and
accepted next to the older itsdangerous form."""

from __future__ import annotations

import pytest

from mailer.common.tokens import Purpose, TokenError, Tokens

NONCE = "a1b2c3d4e5f60718"


def nonce(_reader_id: int) -> str:
    return NONCE


def test_compact_token_round_trips_and_is_single_purpose():
    tokens = Tokens("secret")
    token = tokens.reader_token(Purpose.UNSUBSCRIBE, 123456, NONCE)
    assert token.startswith("r") and len(token) < 40
    assert tokens.reader_id(Purpose.UNSUBSCRIBE, token, nonce) == 123456
    for other in (Purpose.PREFERENCES, Purpose.CONFIRM, Purpose.CHANGE_EMAIL):
        with pytest.raises(TokenError):
            tokens.reader_id(other, token, nonce)


def test_a_token_dies_with_its_reader_nonce():
    tokens = Tokens("secret")
    token = tokens.reader_token(Purpose.PREFERENCES, 9, NONCE)
    with pytest.raises(TokenError):
        tokens.reader_id(Purpose.PREFERENCES, token, lambda _id: None)  # reader gone
    with pytest.raises(TokenError):
        tokens.reader_id(Purpose.PREFERENCES, token, lambda _id: "0" * 16)  # id handed on
    with pytest.raises(TokenError):
        tokens.reader_id(Purpose.PREFERENCES, token, lambda _id: "")
    old = tokens.make(Purpose.PREFERENCES, {"r": 9})  # from before nonces: no "t"
    with pytest.raises(TokenError):
        tokens.reader_id(Purpose.PREFERENCES, old, nonce)


def test_old_itsdangerous_tokens_still_work():
    tokens = Tokens("secret")
    old = tokens.make(Purpose.UNSUBSCRIBE, {"r": 42})
    # A reader from before nonces has an empty one: the links already sent keep working.
    assert tokens.reader_id(Purpose.UNSUBSCRIBE, old, lambda _id: "") == 42
    legacy = tokens.reader_token(Purpose.UNSUBSCRIBE, 42, "")
    assert tokens.reader_id(Purpose.UNSUBSCRIBE, legacy, lambda _id: "") == 42


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
    lambda t: "r2" + t[2:],  # another reader id, same signature
    lambda t: t + "x",
    lambda t: "",
])
def test_tampered_compact_tokens_are_refused(mutate):
    tokens = Tokens("secret")
    token = tokens.reader_token(Purpose.PREFERENCES, 7, NONCE)
    with pytest.raises(TokenError):
        tokens.reader_id(Purpose.PREFERENCES, mutate(token), nonce)


def test_another_secret_refuses_the_token():
    token = Tokens("secret").reader_token(Purpose.UNSUBSCRIBE, 7, NONCE)
    with pytest.raises(TokenError):
        Tokens("other").reader_id(Purpose.UNSUBSCRIBE, token, nonce)


def test_expiring_purposes_never_get_a_compact_token():
    tokens = Tokens("secret")
    assert not tokens.reader_token(Purpose.CONFIRM, 7, NONCE).startswith("r")
