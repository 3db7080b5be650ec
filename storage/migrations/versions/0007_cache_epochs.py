"""cache epochs: one version per cache scope, polled by every gateway process (issue 11, part 2)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cache_epochs',
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('version', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('scope', name=op.f('pk_cache_epochs'))
    )


def downgrade() -> None:
    op.drop_table('cache_epochs')
