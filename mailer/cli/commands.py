"""Command line: `flask --app mailer <command>` or the `mailer` console script.

Each concern registers its own commands; this module only gathers them."""

from __future__ import annotations

from flask import Flask

from mailer.cli.articles import register_article_commands
from mailer.cli.editions import register_edition_commands
from mailer.cli.feeds import register_feed_commands
from mailer.cli.readers import register_reader_commands
from mailer.cli.setup import register_setup_commands


def register_cli(app: Flask) -> None:
    register_setup_commands(app)
    register_edition_commands(app)
    register_article_commands(app)
    register_feed_commands(app)
    register_reader_commands(app)
