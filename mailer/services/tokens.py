"""Signed, single-purpose tokens for links in emails.

Each purpose has its own salt, so a confirmation token can never unsubscribe
anyone, and vice versa. Payloads are reader ids plus, for confirmation, a nonce
that changes whenever the reader's status does (so old links stop working).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer


class Purpose:
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    CHANGE_EMAIL = "change-email"


MAX_AGE = {
    Purpose.CONFIRM: 48 * 3600,
    Purpose.CHANGE_EMAIL: 48 * 3600,
    Purpose.UNSUBSCRIBE: None,  # must work from any old email
    Purpose.PREFERENCES: None,
}


class TokenError(Exception):
    """The token is unknown, tampered with, expired or meant for something else."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass
class Tokens:
    secret_key: str

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret_key, salt=f"mailer.{purpose}")

    def make(self, purpose: str, payload: dict[str, Any]) -> str:
        return str(self._serializer(purpose).dumps(payload))

    def load(self, purpose: str, token: str) -> dict[str, Any]:
        if not token or len(token) > 1000:
            raise TokenError("This link is not valid.")
        try:
            data = self._serializer(purpose).loads(token, max_age=MAX_AGE[purpose])
        except SignatureExpired as exc:
            raise TokenError("This link has expired.", expired=True) from exc
        except (BadData, ValueError, TypeError) as exc:
            raise TokenError("This link is not valid.") from exc
        if not isinstance(data, dict):
            raise TokenError("This link is not valid.")
        return data

    def reader_id(self, purpose: str, token: str) -> int:
        data = self.load(purpose, token)
        reader_id = data.get("r")
        if not isinstance(reader_id, int):
            raise TokenError("This link is not valid.")
        return reader_id
