"""A self-hosted newsletter and digest mailer for news publishers.

`flask --app mailer` finds `create_app` here; the package map is in docs/architecture.md.
"""

from mailer.app import create_app

__all__ = ["create_app"]
