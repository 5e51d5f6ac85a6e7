"""images.matched_at: when an image's candidate pairs were last verified and stored

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 07:40:00

NULL means the image waits for matching: it was stored but its pairs were not (yet)
verified, e.g. the process stopped while they were in worker processes, or matching was
off. The matching stage matches such images when it starts. Rows that exist at upgrade
time were matched when they were stored (matching was synchronous before this revision),
so they get their indexed_at.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('matched_at', sa.DateTime(), nullable=True))
    op.execute("UPDATE images SET matched_at = indexed_at")


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('matched_at')
