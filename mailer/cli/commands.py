"""Command line: `flask --app mailer <command>` or the `mailer` console script."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from flask import Flask
from sqlalchemy import select

from mailer import delivery, editions
from mailer.cli.feeds import register_feed_commands
from mailer.cli.readers import register_reader_commands
from mailer.common import ValidationError
from mailer.console import create_token
from mailer.extensions import db
from mailer.models import Editor, Role
from mailer.runtime import runtime


def _fail(exc: ValidationError) -> None:
    raise click.ClickException(exc.message)


def _bar(p: dict[str, object], width: int = 30) -> str:
    planned = int(p["planned"] or 0)  # type: ignore[call-overload]
    done = planned - int(p["remaining"])  # type: ignore[call-overload]
    filled = int(width * done / planned) if planned else width
    eta = f" eta {p['eta_seconds']}s" if p.get("eta_seconds") else ""
    note = p.get("paused_reason") or p.get("relay_status") or ""  # why it stopped or stalls
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{planned} "
            f"sent {p['sent']} failed {p['failed']} unknown {p['unknown']} "
            f"{p['rate']}/s{eta} {p['status']}" + (f" ({note})" if note else ""))


def _watch(edition_id: int, inline: bool) -> dict[str, object]:
    rt = runtime()
    while True:
        if inline:
            editions.prepare_edition(db.session, rt.settings, edition_id)
            delivery.run_lane(db.session, edition_id, settings=rt.settings, sender=rt.sender(),
                              tokens=rt.tokens, skeletons=rt.skeletons(), limiter=rt.limiter(),
                              budget_seconds=1.0)
            db.session.info.pop("mailer_pending_tasks", None)  # the CLI does the work itself
        db.session.expire_all()
        p = editions.progress(db.session, edition_id)
        click.echo("\r" + _bar(p), nl=False)
        if p["status"] in ("done", "cancelled", "failed", "paused", "draft"):
            click.echo()
            return p
        time.sleep(0.2 if inline else 1.0)


def register_cli(app: Flask) -> None:
    register_feed_commands(app)
    register_reader_commands(app)

    @app.cli.command("demo")
    def demo() -> None:
        """Seed demo topics, articles and a digest (safe to run again)."""
        from mailer.demo import seed_demo

        counts = seed_demo(db.session)
        click.echo(f"demo content ready: {counts}")

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
    def create_token_cmd(name: str, editor_email: str | None) -> None:
        """Create an API token; it is printed once."""
        editor_id = None
        if editor_email:
            editor = db.session.scalar(select(Editor).where(Editor.email == editor_email))
            if editor is None:
                raise click.ClickException(f"no editor {editor_email!r}")
            editor_id = editor.id
        click.echo(create_token(db.session, name, editor_id))

    @app.cli.command("send")
    @click.argument("digest")
    @click.option("--wait/--no-wait", default=True, help="Show a progress bar until done.")
    @click.option("--inline", is_flag=True,
                  help="Send from this process instead of the workers (no broker needed).")
    def send(digest: str, wait: bool, inline: bool) -> None:
        """Start an edition of DIGEST (name or id) now."""
        try:
            edition = editions.start_edition(db.session, digest, created_by="cli")
        except ValidationError as exc:
            _fail(exc)
        click.echo(f"edition {edition.id} of {digest!r} started")
        if wait or inline:
            final = _watch(edition.id, inline)
            if final["status"] == "failed":
                raise click.ClickException(f"edition failed: {final['error']}")

    @app.cli.command("status")
    @click.argument("edition_id", type=int)
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--watch", is_flag=True, help="Follow until the edition ends.")
    def status(edition_id: int, as_json: bool, watch: bool) -> None:
        """Progress of an edition."""
        try:
            if watch:
                _watch(edition_id, inline=False)
                return
            p = editions.progress(db.session, edition_id)
        except ValidationError as exc:
            _fail(exc)
        click.echo(json.dumps(p, indent=2) if as_json else _bar(p))

    for name, func in (("pause", editions.pause_edition), ("cancel", editions.cancel_edition)):
        def make(func=func, name=name):  # type: ignore[no-untyped-def]
            @app.cli.command(name)
            @click.argument("edition_id", type=int)
            def command(edition_id: int) -> None:
                try:
                    func(db.session, edition_id)
                except ValidationError as exc:
                    _fail(exc)
                click.echo(_bar(editions.progress(db.session, edition_id)))
            command.__doc__ = f"{name.capitalize()} an edition."
        make()

    @app.cli.command("resume")
    @click.argument("edition_id", type=int)
    def resume(edition_id: int) -> None:
        """Resume a paused edition."""
        try:
            editions.resume_edition(db.session, runtime().settings, edition_id)
        except ValidationError as exc:
            _fail(exc)
        click.echo(_bar(editions.progress(db.session, edition_id)))

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

    @app.cli.command("sweep")
    def sweep() -> None:
        """Repair the ledger now (beat does this every few seconds)."""
        report = delivery.sweep(db.session, runtime().settings)
        click.echo(f"{report}")
