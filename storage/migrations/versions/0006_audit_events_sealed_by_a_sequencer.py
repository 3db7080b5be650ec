"""audit: events get a chain position (seq) when sealed; unsealed events have no hashes yet

The chain used to be ordered by id, with every writer locking the head row until its transaction ended. Events
are now inserted unsealed and sealed in batches by one sealer (storage/repo/audit.py). Existing events are
all sealed: they get seq 1, 2, 3... in id order and keep their hashes, which were computed by the first rule
(``audit_head.v1_through`` marks how far that rule applies). Nothing is re-hashed: a record that was broken
before stays broken.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 08:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=True)
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('v1_through', sa.BigInteger(), server_default='0', nullable=False))
    # ids may have gaps (PostgreSQL sequences skip on rollback); chain positions may not
    op.execute(sa.text("UPDATE audit_events SET seq = r.n FROM "
                       "(SELECT id AS rid, row_number() OVER (ORDER BY id) AS n FROM audit_events) AS r "
                       "WHERE audit_events.id = r.rid"))
    op.execute(sa.text("UPDATE audit_head SET last_id = (SELECT count(*) FROM audit_events), "
                       "v1_through = (SELECT count(*) FROM audit_events)"))
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_seq', ['seq'], unique=True)
        batch_op.create_index('ix_audit_unsealed', ['id'], unique=False, postgresql_where=sa.text('seq IS NULL'),
                              sqlite_where=sa.text('seq IS NULL'))


def downgrade() -> None:
    # events sealed under the new rule do not verify under the old one; unsealed ones would lose their place
    if op.get_bind().execute(sa.text("SELECT count(*) FROM audit_events WHERE seq IS NULL")).scalar():
        raise RuntimeError("unsealed audit events: start the gateway once to seal them, then downgrade")
    op.execute(sa.text("UPDATE audit_head SET last_id = coalesce((SELECT max(id) FROM audit_events), 0)"))
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_unsealed')
        batch_op.drop_index('ix_audit_events_seq')
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column('seq')
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('v1_through')
