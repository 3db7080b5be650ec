"""admin: lifecycle history, contacts, consultant, grant ends, outbox, api tokens

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 19:03:46.384144
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('institution_id', sa.String(length=10), nullable=True),
    sa.Column('recipients', sa.Text(), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('claimed_by', sa.String(length=100), nullable=False),
    sa.Column('claimed_until', sa.Float(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['sent_at', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_institution_id'), ['institution_id'], unique=False)

    op.create_table('status_changes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('institution_id', sa.String(length=10), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=False),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('reference', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_status_changes_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_changes'))
    )
    with op.batch_alter_table('status_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_status_changes_institution_id'), ['institution_id'], unique=False)

    with op.batch_alter_table('device_passwords', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='webdav', nullable=False))

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sessions_after', sa.Float(), server_default='0', nullable=False))

    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_changed_by', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('status_reference', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('contacts', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('security_consultant_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('digest_cursor', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_digest_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('last_digest_at')
        batch_op.drop_column('digest_cursor')
        batch_op.drop_column('security_consultant_id')
        batch_op.drop_column('contacts')
        batch_op.drop_column('status_reference')
        batch_op.drop_column('status_changed_by')

    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_column('expires_at')

    with op.batch_alter_table('device_passwords', schema=None) as batch_op:
        batch_op.drop_column('kind')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('sessions_after')

    with op.batch_alter_table('status_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_status_changes_institution_id'))

    op.drop_table('status_changes')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_institution_id'))
        batch_op.drop_index('ix_outbox_due')

    op.drop_table('outbox')
