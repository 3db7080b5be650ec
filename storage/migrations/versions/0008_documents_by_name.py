"""documents: an index by name (centre, folder, name) over every state

Every lookup of a document by its name (a stat, an open for download, an upload's check for the visible
document and for an identical one delivered before, visible or archived) could only use the listing index
(centre, folder, state), and so read every visible document of the folder to find one name: an upload into a
folder of 10,000 documents read about 20,000 index entries (bench/sftp_bench.py --only ls: 57 uploads/s, against
77/s into a folder of 2,000). The unique index of visible names is partial, and SQLite cannot prove a query's
``state IN (?, ?)`` with bound values implies it. With this index a lookup reads the rows of that one name.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 11:00:00
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_documents_name', 'documents', ['institution_id', 'folder', 'name'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_documents_name', table_name='documents')
