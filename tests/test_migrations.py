"""Models and migrations must agree, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mailer.extensions import db
from mailer.models import Base


def test_models_match_migrations(app):
    # base_app ran `flask db upgrade` on this backend; any difference is a missing migration.
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_is_safe_to_run_again(app):
    from flask_migrate import upgrade

    upgrade()  # the Procfile's release step runs on every deploy
