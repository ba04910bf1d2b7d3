"""The console's fixtures (editors of each role, logged-in clients) for these tests."""

from tests.console.conftest import admin, editor, editors, viewer

__all__ = ["admin", "editor", "editors", "viewer"]
