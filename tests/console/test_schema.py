"""The console's migration (0005) and the models agree, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mailer.extensions import db
from mailer.models import Base


def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    with db.engine.connect() as conn:
        names = {ix["name"] for table in ("readers", "deliveries", "reader_events", "edition_links")
                 for ix in db.inspect(conn).get_indexes(table)}
    assert {"ix_readers_email_key_prefix", "ix_deliveries_sent_at", "ix_reader_events_kind_created_at",
            "ix_edition_links_article_id"} <= names


def test_every_console_view_declares_its_roles(app):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/console") or rule.endpoint in ("console.login", "console.login_code"):
            continue
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "required_roles", None), rule.endpoint
