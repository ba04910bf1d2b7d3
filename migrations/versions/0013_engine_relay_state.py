"""engine: why an edition paused itself, since when its relay is unreachable, quiet hours

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 13:30:00

`paused_reason` says why the circuit breaker paused an edition (empty when an
editor paused it); `relay_unreachable_since` is set while no SMTP relay answers;
`breaker_reset_at` is when the failure-rate window last started (a resume);
`lanes_woken_at` is when the sweeper last queued lanes for the edition;
`resume_at` ends a pause by itself (quiet hours, warm-up cap); digests get
`quiet_hours`; `send_quota_days` counts messages per sending domain and day (warm-up).
"""
from alembic import op
import sqlalchemy as sa

import mailer.models.base  # UTCDateTime


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'send_quota_days',
        sa.Column('domain', sa.String(length=255), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('used', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('domain', 'day', name=op.f('pk_send_quota_days')),
    )
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_reason', sa.Text(), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('relay_unreachable_since', mailer.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('breaker_reset_at', mailer.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lanes_woken_at', mailer.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resume_at', mailer.models.base.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quiet_hours', sa.String(length=11), server_default='',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_column('quiet_hours')
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.drop_column('resume_at')
        batch_op.drop_column('lanes_woken_at')
        batch_op.drop_column('breaker_reset_at')
        batch_op.drop_column('relay_unreachable_since')
        batch_op.drop_column('paused_reason')
    op.drop_table('send_quota_days')
