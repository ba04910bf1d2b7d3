"""The console blueprint object, apart from the views that register on it."""

from __future__ import annotations

from flask import Blueprint

console = Blueprint("console", __name__)
