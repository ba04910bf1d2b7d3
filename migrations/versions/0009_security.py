"""security hardening: reader ids never reused, reader link nonces

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


def downgrade():
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
