"""reader links, timed pause, feed pause

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 13:30:00

"Email me a new link" requests (link_sent_at / link_mailed_at, claimed like
confirmation emails), "pause for 30 days" (paused_until, resume_frequency) and
feeds an editor paused.
"""
from alembic import op
import sqlalchemy as sa

import mailer.models.base


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTERs, not a batch: a batch would rebuild `readers` on SQLite and drop
    # its AUTOINCREMENT (ids of erased readers must never be handed out again).
    op.add_column('readers', sa.Column('paused_until', mailer.models.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column('readers', sa.Column('resume_frequency', sa.String(length=20), server_default='',
                                       nullable=False))
    op.add_column('readers', sa.Column('link_sent_at', mailer.models.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column('readers', sa.Column('link_mailed_at', mailer.models.base.UTCDateTime(timezone=True), nullable=True))
    op.create_index('ix_readers_paused_until', 'readers', ['paused_until'], unique=False)
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('paused')
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_index('ix_readers_paused_until')
        batch_op.drop_column('link_mailed_at')
        batch_op.drop_column('link_sent_at')
        batch_op.drop_column('resume_frequency')
        batch_op.drop_column('paused_until')
