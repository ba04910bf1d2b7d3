"""Edition commands: `send`, `status`, `pause`, `cancel`, `resume`, `sweep`."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import click
from flask import Flask

from mailer import delivery, editions
from mailer.cli.errors import fail as _fail
from mailer.common import ValidationError
from mailer.extensions import db
from mailer.models.base import DbSession
from mailer.runtime import runtime

FINAL = ("done", "cancelled", "failed", "paused", "draft")


def _bar(p: dict[str, object], width: int = 30) -> str:
    planned = int(p["planned"] or 0)  # type: ignore[call-overload]
    done = planned - int(p["remaining"])  # type: ignore[call-overload]
    if p["status"] == "compiling":
        # Nothing is planned yet: an empty bar, never a full one.
        return f"[{'.' * width}] compiling"
    filled = int(width * done / planned) if planned else (width if p["status"] == "done" else 0)
    eta = f" eta {p['eta_seconds']}s" if p.get("eta_seconds") else ""
    note = p.get("paused_reason") or p.get("relay_status") or ""  # why it stopped or stalls
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{planned} "
            f"sent {p['sent']} failed {p['failed']} unknown {p['unknown']} "
            f"{p['rate']}/s{eta} {p['status']}" + (f" ({note})" if note else ""))


class _Line:
    """One status line rewritten in place on a terminal (each update clears what
    the longer one before left); elsewhere a line per change, no carriage returns."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.width = 0
        self.last = ""

    def show(self, text: str) -> None:
        if not self.tty:
            if text.split("] ", 1)[-1] != self.last.split("] ", 1)[-1]:
                click.echo(text)
            self.last = text
            return
        click.echo("\r" + text.ljust(self.width), nl=False)
        self.width, self.last = len(text), text

    def end(self) -> None:
        if self.tty:
            click.echo()


def _watch(edition_id: int, inline: bool) -> dict[str, object]:
    line = _Line()
    try:
        return _follow(edition_id, inline, line)
    finally:
        line.end()


def _follow(edition_id: int, inline: bool, line: _Line) -> dict[str, object]:
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
        line.show(_bar(p))
        if p["status"] in FINAL:
            return p
        time.sleep(0.2 if inline else 1.0)


def register_edition_commands(app: Flask) -> None:
    @app.cli.command("send")
    @click.argument("digest")
    @click.option("--wait/--no-wait", default=True, help="Show a progress bar until done.")
    @click.option("--inline", is_flag=True,
                  help="Send from this process instead of the workers (no broker needed).")
    @click.option("--yes", "-y", "assume_yes", is_flag=True,
                  help="Do not ask for confirmation (a terminal asks; scripts never do).")
    def send(digest: str, wait: bool, inline: bool, assume_yes: bool) -> None:
        """Start an edition of DIGEST (name or id) now: says first how many readers
        it will reach, and asks on a terminal."""
        try:
            plan = editions.plan_send(db.session, digest)
        except ValidationError as exc:
            _fail(exc)
        if not plan.readers:
            raise click.ClickException(
                f"Digest {plan.digest_name!r}: nothing to send ({plan.reason}); nothing created.")
        click.echo(f"{plan.digest_name}: this edition will reach {plan.readers:,} reader(s) "
                   f"with {len(plan.article_ids)} story(ies).")
        if not assume_yes and sys.stdin.isatty() and not click.confirm(
                "Send it now?", default=False):
            click.echo("Not sent; nothing created.")
            return
        try:
            edition = editions.start_edition(db.session, plan.digest_id, created_by="cli")
        except ValidationError as exc:
            _fail(exc)
        click.echo(f"edition {edition.id} of {plan.digest_name!r} started")
        if wait or inline:
            final = _watch(edition.id, inline)
            if final["status"] == "failed":
                raise click.ClickException(f"edition failed: {final['error']}")
            click.echo(f"edition {edition.id} {final['status']}: sent {final['sent']}, "
                       f"failed {final['failed']}, unknown {final['unknown']}")

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

    def control(name: str, func: Callable[[DbSession, int], object]) -> None:
        def command(edition_id: int) -> None:
            try:
                func(db.session, edition_id)
            except ValidationError as exc:
                _fail(exc)
            click.echo(_bar(editions.progress(db.session, edition_id)))
        command.__doc__ = f"{name.capitalize()} an edition."
        app.cli.add_command(click.Command(name, callback=command, help=command.__doc__,
                                          params=[click.Argument(["edition_id"], type=int)]))

    control("pause", editions.pause_edition)
    control("cancel", editions.cancel_edition)

    @app.cli.command("resume")
    @click.argument("edition_id", type=int)
    def resume(edition_id: int) -> None:
        """Resume a paused edition."""
        try:
            editions.resume_edition(db.session, runtime().settings, edition_id)
        except ValidationError as exc:
            _fail(exc)
        click.echo(_bar(editions.progress(db.session, edition_id)))

    @app.cli.command("sweep")
    def sweep() -> None:
        """Repair the ledger now (beat does this every few seconds)."""
        report = delivery.sweep(db.session, runtime().settings)
        click.echo(f"{report}")
