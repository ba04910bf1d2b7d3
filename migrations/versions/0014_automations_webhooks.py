"""automations, outgoing webhooks, breaking-news alerts and audiences (segments)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 13:30:00

Automation sequences with their own ledger (one row per step and reader), and
webhook endpoints with the outbox of calls owed to them.
"""
from alembic import op
import sqlalchemy as sa

from mailer.models.base import UTCDateTime


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'segments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('definition', sa.JSON(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
        sa.UniqueConstraint('name', name=op.f('uq_segments_name')),
    )
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segment_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_digests_segment_id_segments'), 'segments',
                                    ['segment_id'], ['id'], ondelete='SET NULL')
    # A plain ALTER, not a batch: a batch would rebuild `readers` on SQLite and drop
    # its AUTOINCREMENT.
    op.add_column('readers', sa.Column('alerts', sa.Boolean(), server_default=sa.text('false'),
                                       nullable=False))
    op.create_table(
        'automations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('trigger', sa.String(length=40), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_automations')),
        sa.UniqueConstraint('name', name=op.f('uq_automations_name')),
    )
    op.create_table(
        'automation_topics',
        sa.Column('automation_id', sa.Integer(), nullable=False),
        sa.Column('topic_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['automation_id'], ['automations.id'], ondelete='CASCADE',
                                name=op.f('fk_automation_topics_automation_id_automations')),
        sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], ondelete='CASCADE',
                                name=op.f('fk_automation_topics_topic_id_topics')),
        sa.PrimaryKeyConstraint('automation_id', 'topic_id', name=op.f('pk_automation_topics')),
    )
    op.create_table(
        'automation_steps',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('automation_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('delay_minutes', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body_text', sa.Text(), nullable=False),
        sa.Column('body_mjml', sa.Text(), nullable=False),
        sa.Column('html', sa.Text(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['automation_id'], ['automations.id'], ondelete='CASCADE',
                                name=op.f('fk_automation_steps_automation_id_automations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_automation_steps')),
        sa.UniqueConstraint('automation_id', 'position',
                            name=op.f('uq_automation_steps_automation_id')),
    )
    op.create_table(
        'automation_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('step_id', sa.Integer(), nullable=False),
        sa.Column('reader_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('due_at', UTCDateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_by', sa.String(length=64), nullable=False),
        sa.Column('claimed_at', UTCDateTime(), nullable=True),
        sa.Column('sent_at', UTCDateTime(), nullable=True),
        sa.Column('smtp_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['step_id'], ['automation_steps.id'], ondelete='CASCADE',
                                name=op.f('fk_automation_deliveries_step_id_automation_steps')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_automation_deliveries')),
        sa.UniqueConstraint('step_id', 'reader_id', name=op.f('uq_automation_deliveries_step_id')),
    )
    op.create_index('ix_automation_deliveries_status_due', 'automation_deliveries',
                    ['status', 'due_at'], unique=False)
    op.create_index('ix_automation_deliveries_reader_id', 'automation_deliveries',
                    ['reader_id'], unique=False)

    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('secret', sa.String(length=100), nullable=False),
        sa.Column('event_types', sa.String(length=1000), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('disabled_reason', sa.Text(), nullable=False),
        sa.Column('failing_since', UTCDateTime(), nullable=True),
        sa.Column('last_success_at', UTCDateTime(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    )
    op.create_table(
        'webhook_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('msg_id', sa.String(length=40), nullable=False),
        sa.Column('event_type', sa.String(length=40), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTCDateTime(), nullable=False),
        sa.Column('claimed_by', sa.String(length=64), nullable=False),
        sa.Column('claimed_at', UTCDateTime(), nullable=True),
        sa.Column('last_status', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('delivered_at', UTCDateTime(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_messages_endpoint_id_webhook_endpoints')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_messages')),
    )
    op.create_index('ix_webhook_messages_status_due', 'webhook_messages',
                    ['status', 'next_attempt_at'], unique=False)
    op.create_index('ix_webhook_messages_endpoint_id', 'webhook_messages',
                    ['endpoint_id', 'id'], unique=False)


def downgrade():
    op.drop_table('webhook_messages')
    op.drop_table('webhook_endpoints')
    op.drop_table('automation_deliveries')
    op.drop_table('automation_steps')
    op.drop_table('automation_topics')
    op.drop_table('automations')
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_column('alerts')
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_digests_segment_id_segments'), type_='foreignkey')
        batch_op.drop_column('segment_id')
    op.drop_table('segments')
