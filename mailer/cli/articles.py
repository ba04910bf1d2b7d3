"""Article commands: `add-article FILE`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask

from mailer.cli.errors import fail as _fail
from mailer.common import ValidationError
from mailer.extensions import db


def register_article_commands(app: Flask) -> None:
    @app.cli.command("add-article")
    @click.argument("json_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    def add_article(json_file: Path) -> None:
        """Add or update articles from a JSON file (an object or a list of objects)."""
        from mailer.content import upsert_article

        try:
            data = json.loads(json_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise click.ClickException(f"{json_file} is not valid JSON: {exc}") from exc
        items = data if isinstance(data, list) else [data]
        try:
            for index, item in enumerate(items):
                try:
                    upsert_article(db.session, item, commit=False)
                except ValidationError as exc:
                    raise ValidationError(f"item {index}: {exc.message}") from exc
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            _fail(exc)
        click.echo(f"{len(items)} article(s) saved")
