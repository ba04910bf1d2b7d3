"""honest engagement: machine opens and the inactive-reader policy

Revision ID: 0017e
Revises: 0017t
Create Date: 2026-11-29 16:30:00

Readers get their place in the inactive-reader policy; a small partial index lets a
pixel hit find a reader's earlier open of an edition with one probe. Plain ALTERs on
`readers`: a batch would rebuild it on SQLite and drop its AUTOINCREMENT.
"""
from alembic import op
import sqlalchemy as sa
from mailer.models.base import UTCDateTime


revision = '0017e'
down_revision = '0017t'
branch_labels = None
depends_on = None

FIRST_OPEN = "kind = 'open' OR kind = 'open-machine'"


def upgrade():
    op.add_column('readers', sa.Column('engagement_state', sa.String(length=20), server_default='',
                                       nullable=False))
    op.add_column('readers', sa.Column('engagement_changed_at', UTCDateTime(timezone=True),
                                       nullable=True))
    op.create_index('ix_reader_events_first_open', 'reader_events',
                    ['edition_id', 'reader_id', 'kind'],
                    postgresql_where=sa.text(FIRST_OPEN), sqlite_where=sa.text(FIRST_OPEN))


def downgrade():
    op.drop_index('ix_reader_events_first_open', table_name='reader_events')
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_column('engagement_changed_at')
        batch_op.drop_column('engagement_state')
