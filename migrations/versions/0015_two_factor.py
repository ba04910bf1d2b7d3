"""two-factor login (TOTP) for console editors

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 15:00:00

The TOTP secret (confirmed and pending) and last accepted step on each editor,
one-time recovery codes (hashes only), and the admins' "require 2FA" switch.
"""
from alembic import op
import sqlalchemy as sa

from mailer.models.base import UTCDateTime


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('editors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_pending_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.add_column(sa.Column('require_two_factor', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
    op.create_table(
        'editor_recovery_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('editor_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('used_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['editor_id'], ['editors.id'],
                                name=op.f('fk_editor_recovery_codes_editor_id_editors'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_editor_recovery_codes')),
    )
    with op.batch_alter_table('editor_recovery_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_editor_recovery_codes_editor_id'), ['editor_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('editor_recovery_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_editor_recovery_codes_editor_id'))
    op.drop_table('editor_recovery_codes')
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.drop_column('require_two_factor')
    with op.batch_alter_table('editors', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_pending_secret')
        batch_op.drop_column('totp_secret')
