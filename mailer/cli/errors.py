"""How CLI commands report a refused input."""

from __future__ import annotations

from typing import NoReturn

import click

from mailer.common import ValidationError


def fail(exc: ValidationError) -> NoReturn:
    """A service's validation error as a CLI error (message, exit status 1, no traceback)."""
    raise click.ClickException(exc.message)
