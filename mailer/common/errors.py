"""Errors services raise for bad input; views turn them into 4xx answers."""

from __future__ import annotations


class ValidationError(Exception):
    """Input that cannot be accepted. `fields` maps field names to messages."""

    def __init__(self, message: str, fields: dict[str, str] | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.status = status


class NotFound(ValidationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=404)


class Conflict(ValidationError):
    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message, fields, status=409)
