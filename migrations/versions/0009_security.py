"""security hardening: reader ids never reused, reader link nonces, login
throttles, server-side console sessions, API token scopes, audit log

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 13:30:00

On SQLite `readers` is rebuilt with AUTOINCREMENT so an erased reader's id is
never handed to the next subscriber, and the id sequence starts above every id
the ledger remembers. `token_nonce` is signed into each reader's lasting links;
readers from before keep an empty one, so links in emails already sent still work.
"""
from alembic import op
import sqlalchemy as sa

import mailer.models.base


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def _sqlite_foreign_keys(bind, on):
    """SQLite's DROP TABLE inside a rebuild fires ON DELETE actions (it would empty
    reader_topics): switch enforcement off around it. The pragma is ignored inside
    a transaction, so what ran before is committed first."""
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar() == int(on):
        return
    if bind.connection.dbapi_connection.in_transaction:
        bind.exec_driver_sql("COMMIT")
    bind.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def upgrade():
    bind = op.get_bind()
    sqlite = bind.dialect.name == 'sqlite'
    if sqlite:
        _sqlite_foreign_keys(bind, False)
    try:
        with op.batch_alter_table('readers', schema=None,
                                  recreate='always' if sqlite else 'auto',
                                  table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            batch_op.add_column(sa.Column('token_nonce', sa.String(length=32), server_default='',
                                          nullable=False))
        if sqlite:
            op.execute("DELETE FROM sqlite_sequence WHERE name = 'readers'")
            op.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'readers', max("
                       "coalesce((SELECT max(id) FROM readers), 0), "
                       "coalesce((SELECT max(reader_id) FROM deliveries), 0))")
    finally:
        if sqlite:
            _sqlite_foreign_keys(bind, True)

    op.create_table(
        'login_throttles',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_failure_at', mailer.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('blocked_until', mailer.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('notified_at', mailer.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_hash'),
    )
    op.create_table(
        'editor_sessions',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('editor_id', sa.Integer(), nullable=False),
        sa.Column('created_at', mailer.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', mailer.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['editor_id'], ['editors.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id_hash'),
    )
    with op.batch_alter_table('editor_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_editor_sessions_editor_id', ['editor_id'], unique=False)
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('editor_id', sa.Integer(), nullable=True),
        sa.Column('actor', sa.String(length=320), nullable=False),
        sa.Column('action', sa.String(length=80), nullable=False),
        sa.Column('target', sa.String(length=300), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.Column('ip', sa.String(length=64), nullable=False),
        sa.Column('created_at', mailer.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['editor_id'], ['editors.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_created_at', ['created_at'], unique=False)
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=10), server_default='admin',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('scope')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_created_at')
    op.drop_table('audit_events')
    with op.batch_alter_table('editor_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_editor_sessions_editor_id')
    op.drop_table('editor_sessions')
    op.drop_table('login_throttles')

    bind = op.get_bind()
    sqlite = bind.dialect.name == 'sqlite'
    if sqlite:
        _sqlite_foreign_keys(bind, False)
    try:
        with op.batch_alter_table('readers', schema=None,
                                  recreate='always' if sqlite else 'auto') as batch_op:
            batch_op.drop_column('token_nonce')
    finally:
        if sqlite:
            _sqlite_foreign_keys(bind, True)
