"""publication settings, digest intro/section order/archive, edition dropped stories

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-29 13:30:00

The publication's identity lives in a single-row table (NULL = environment
default). Digests gain an intro, a section order and an archive time; editions
remember the stories an editor dropped from a draft.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'publication',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=True),
        sa.Column('logo_url', sa.String(length=2000), nullable=True),
        sa.Column('accent_color', sa.String(length=7), nullable=True),
        sa.Column('website_url', sa.String(length=2000), nullable=True),
        sa.Column('postal_address', sa.Text(), nullable=True),
        sa.Column('language', sa.String(length=35), nullable=True),
        sa.Column('from_name', sa.String(length=200), nullable=True),
        sa.Column('footer_text', sa.Text(), nullable=True),
        sa.Column('updated_by', sa.String(length=320), nullable=False, server_default=''),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text('CURRENT_TIMESTAMP')),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('intro', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('section_order', sa.JSON(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dropped_ids', sa.JSON(), nullable=False,
                                      server_default='[]'))


def downgrade():
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.drop_column('dropped_ids')
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_column('archived_at')
        batch_op.drop_column('section_order')
        batch_op.drop_column('intro')
    op.drop_table('publication')
