"""editor session version

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 04:45:00

Part of the fingerprint in an editor's session cookie: raising it (deactivation,
reactivation) ends every session opened before.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('editors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('editors', schema=None) as batch_op:
        batch_op.drop_column('session_version')
