"""reader time zone and attributes

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 15:00:00

Readers get an IANA time zone and a JSON object of the publisher's own values
(attributes), set by the API; audiences can select on both. Plain ALTERs: a batch
would rebuild `readers` on SQLite and drop its AUTOINCREMENT.
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('readers', sa.Column('timezone', sa.String(length=64), server_default='',
                                       nullable=False))
    op.add_column('readers', sa.Column('attributes', sa.JSON(), server_default=sa.text("'{}'"),
                                       nullable=False))


def downgrade():
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_column('attributes')
        batch_op.drop_column('timezone')
