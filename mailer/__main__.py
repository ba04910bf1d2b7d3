"""The `mailer` console script (and `python -m mailer`): the same commands as
`flask --app mailer`."""

from __future__ import annotations

import sys

from flask.cli import FlaskGroup

from mailer.app import create_app


def main() -> None:
    cli = FlaskGroup(create_app=lambda: create_app())
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
