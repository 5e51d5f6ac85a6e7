"""actions: the journal of ``photoqa dupes --apply`` and ``photoqa undo``

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00

One row per file acted on (a duplicate or a sidecar that travels with it), in batches
(one ``--apply ... --yes`` run each). A row is written ``planned`` before the file is
touched and marked ``done`` after, each in its own transaction, so a run killed half-way
leaves ``planned`` rows that the next apply or undo reconciles with the disk. ``undone``
rows were restored by ``photoqa undo``; ``skipped`` rows say why in ``reason``. The
index on ``destination`` serves the indexer's question "did photoqa put this file here?".
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'actions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('batch', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('destination', sa.Text(), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=True),
        sa.Column('mtime_ns', sa.BigInteger(), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('image_id', sa.Integer(), nullable=True),
        sa.Column('group_id', sa.Integer(), nullable=True),
        sa.Column('sidecar_of', sa.Integer(), nullable=True),
        sa.Column('link_target', sa.Text(), nullable=True),
        sa.Column('state', sa.String(length=8), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_actions')),
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index('ix_actions_batch', ['batch'], unique=False)
        batch_op.create_index('ix_actions_destination', ['destination'], unique=False)
        batch_op.create_index('ix_actions_state', ['state'], unique=False)


def downgrade() -> None:
    op.drop_table('actions')
