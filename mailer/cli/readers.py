"""Reader commands: `import-readers FILE [--consent]`, `export-readers [FILE]`."""

from __future__ import annotations

import sys
from typing import BinaryIO, TextIO

import click
from flask import Flask

from mailer import readers as readers_service
from mailer.common import ValidationError
from mailer.extensions import db


def register_reader_commands(app: Flask) -> None:
    @app.cli.command("import-readers")
    @click.argument("file", type=click.File("rb"))
    @click.option("--consent", is_flag=True,
                  help="Consent is on record: add readers confirmed, without a confirmation email.")
    def import_readers(file: BinaryIO, consent: bool) -> None:
        """Import readers from a CSV file (columns email,name,topics,frequency).
        Nothing is written unless every row is valid."""
        try:
            report = readers_service.import_readers(db.session, file.read(), consent=consent,
                                               source=f"cli-import{':consent' if consent else ''}")
        except ValidationError as exc:
            raise click.ClickException(exc.message) from exc
        for line, message in report.errors:
            click.echo(f"line {line}: {message}", err=True)
        if not report.ok:
            raise click.ClickException(f"{len(report.errors)} invalid row(s); nothing was imported.")
        click.echo(f"rows {report.rows}: created {report.created}, already known {report.existing}, "
                   f"duplicates in file {report.duplicates}, suppressed {report.suppressed}")

    @app.cli.command("export-readers")
    @click.argument("file", type=click.File("w", encoding="utf-8", lazy=True), default="-")
    def export_readers(file: TextIO) -> None:
        """Write every reader as CSV to FILE (default: standard output)."""
        for chunk in readers_service.export_readers(db.session):
            file.write(chunk)
        if file is not sys.stdout:
            file.close()
