"""actions: the journal of photoqa dupes --apply, read by photoqa undo

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:40:00

One row per file operation, written ``planned`` before the file is touched and marked
``done`` (with where the file went) after, so a run killed in between is reconciled with
the disk by the next apply or undo, and every done operation can be reversed.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('action', sa.String(length=12), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('destination', sa.Text(), nullable=True),
    sa.Column('image_id', sa.Integer(), nullable=True),
    sa.Column('keeper_path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actions'))
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_actions_batch'), ['batch'], unique=False)
        batch_op.create_index(batch_op.f('ix_actions_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_actions_state'))
        batch_op.drop_index(batch_op.f('ix_actions_batch'))
    op.drop_table('actions')
