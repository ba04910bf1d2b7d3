"""A/B subject tests and one-off audiences of editions

Revision ID: 0017a
Revises: 0016
Create Date: 2026-11-29 16:30:00

`subject_tests` holds an edition's alternative subjects and the winner; each
ledger row carries the subject index its reader gets (`held` rows wait for the
winner). `editions.segment_id` narrows one edition's audience. Plain ALTERs.
"""
from alembic import op
import sqlalchemy as sa

from mailer.models.base import UTCDateTime


revision = '0017a'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'subject_tests',
        sa.Column('edition_id', sa.Integer(), nullable=False),
        sa.Column('subjects', sa.JSON(), nullable=False),
        sa.Column('sample_percent', sa.Integer(), nullable=False),
        sa.Column('wait_minutes', sa.Integer(), nullable=False),
        sa.Column('metric', sa.String(length=10), nullable=False),
        sa.Column('decide_at', UTCDateTime(), nullable=True),
        sa.Column('winner', sa.Integer(), nullable=True),
        sa.Column('decided_at', UTCDateTime(), nullable=True),
        sa.Column('results', sa.JSON(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['edition_id'], ['editions.id'],
                                name=op.f('fk_subject_tests_edition_id_editions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('edition_id', name=op.f('pk_subject_tests')),
    )
    op.create_index(op.f('ix_subject_tests_decide_at'), 'subject_tests', ['decide_at'],
                    unique=False)
    op.add_column('editions', sa.Column('segment_id', sa.Integer(), nullable=True))
    op.add_column('deliveries', sa.Column('subject_index', sa.SmallInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('subject_index')
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.drop_column('segment_id')
    op.drop_index(op.f('ix_subject_tests_decide_at'), table_name='subject_tests')
    op.drop_table('subject_tests')
