"""confirmation due index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 03:40:00

Confirmation emails are drained from the readers table (mailer.send_confirmations);
this partial index keeps that read small however many readers never confirmed.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.create_index(
            'ix_readers_confirmation_due', ['confirmation_sent_at'], unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"))


def downgrade():
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_index('ix_readers_confirmation_due')
