"""Setup commands: `demo`, `welcome`, `create-editor`, `create-token`."""

from __future__ import annotations

import click
from flask import Flask
from sqlalchemy import select

from mailer.cli.errors import fail as _fail
from mailer.common import ValidationError
from mailer.console import SCOPES, create_token
from mailer.extensions import db
from mailer.models import Editor, Role
from mailer.runtime import runtime


def register_setup_commands(app: Flask) -> None:
    @app.cli.command("demo")
    def demo() -> None:
        """Seed demo topics, articles and a digest into an empty database."""
        from mailer.demo import seed_demo

        counts = seed_demo(db.session)
        if counts is None:
            click.echo("The database has content already: no demo content added.")
        else:
            click.echo(f"demo content ready: {counts}")

    @app.cli.command("welcome")
    def welcome() -> None:
        """Where the console is, and how to make the first editor."""
        settings = runtime().settings
        click.echo(f"Reader signup page: {settings.base_url}/subscribe")
        click.echo(f"Editors' console:   {settings.base_url}/console/")
        if db.session.scalar(select(Editor.id).limit(1)) is None:
            click.echo("No editor yet. Create the first one (an admin; it asks for a password):")
            click.echo("    .venv/bin/flask --app mailer create-editor you@example.org")

    @app.cli.command("create-editor")
    @click.argument("email")
    @click.option("--role", type=click.Choice(Role.ALL), default=Role.ADMIN)
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
    def create_editor(email: str, role: str, password: str) -> None:
        """Create an editor account for the console."""
        from mailer.console import create_editor as create

        try:
            editor = create(db.session, email, password, role)
        except ValidationError as exc:
            _fail(exc)
        click.echo(f"editor {editor.email} ({editor.role}) created")

    @app.cli.command("create-token")
    @click.option("--name", default="cli", help="What the token is for.")
    @click.option("--editor", "editor_email", default=None, help="Owner's email.")
    @click.option("--scope", type=click.Choice(SCOPES), default="write", show_default=True,
                  help="read: GET only; write: also changes; admin: also admin routes. "
                       "Capped by the owner's role (a viewer gets read at most).")
    def create_token_cmd(name: str, editor_email: str | None, scope: str) -> None:
        """Create an API token; it is printed once."""
        editor_id = None
        if editor_email:
            editor = db.session.scalar(select(Editor).where(Editor.email == editor_email.lower()))
            if editor is None:
                raise click.ClickException(f"no editor {editor_email!r}")
            editor_id = editor.id
        try:
            click.echo(create_token(db.session, name, editor_id, scope=scope))
        except ValidationError as exc:
            _fail(exc)
