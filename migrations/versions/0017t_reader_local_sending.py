"""reader-local sending: an edition's local send time, waiting ledger rows

Revision ID: 0017t
Revises: 0017a
Create Date: 2026-11-29 16:40:00

`editions.local_send` is the wall-clock date and time ("2026-03-08T07:00") each
reader gets a reader-local edition at, in their own zone ("" = everyone at once).
Ledger rows planned for a later hour wait with status `waiting` until their
`next_attempt_at`; a partial index lets the tick find the due ones without
reading the rest of the ledger. Plain ALTER: no table rebuild on SQLite.
"""
from alembic import op
import sqlalchemy as sa


revision = '0017t'
down_revision = '0017a'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('editions', sa.Column('local_send', sa.String(length=16), server_default='',
                                        nullable=False))
    op.create_index('ix_deliveries_waiting', 'deliveries', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text("status = 'waiting'"),
                    sqlite_where=sa.text("status = 'waiting'"))


def downgrade():
    op.drop_index('ix_deliveries_waiting', table_name='deliveries',
                  postgresql_where=sa.text("status = 'waiting'"),
                  sqlite_where=sa.text("status = 'waiting'"))
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.drop_column('local_send')
