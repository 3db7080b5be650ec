"""documents: kind, legislation and period (filing), the protocol of the first fetch (receipts), an index for a
centre's documents newest first; page_visits ("new since my last visit" on the institutional page)

Documents delivered before this revision stay unclassified (all three NULL).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 20:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite has it): no copy of the table, its partial indexes stay as they are
    op.add_column('documents', sa.Column('first_fetched_protocol', sa.String(length=16), nullable=True))
    op.add_column('documents', sa.Column('kind', sa.String(length=32), nullable=True))
    op.add_column('documents', sa.Column('legislation', sa.String(length=16), nullable=True))
    op.add_column('documents', sa.Column('period', sa.String(length=7), nullable=True))
    op.create_index('ix_documents_catalogue', 'documents', ['institution_id', 'state', 'committed_at'],
                    unique=False)
    op.create_table('page_visits',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('institution_id', sa.String(length=10), nullable=False),
    sa.Column('previous_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_page_visits_account_id_accounts'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'],
                            name=op.f('fk_page_visits_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'institution_id', name=op.f('pk_page_visits'))
    )


def downgrade() -> None:
    op.drop_table('page_visits')
    op.drop_index('ix_documents_catalogue', table_name='documents')
    with op.batch_alter_table('documents') as batch:
        batch.drop_column('period')
        batch.drop_column('legislation')
        batch.drop_column('kind')
        batch.drop_column('first_fetched_protocol')
