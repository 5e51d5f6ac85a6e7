"""images.container, array_key, frame: rows that are frames of an array stack (.npy/.npz)

A frame's row has ``path`` = ``<file>#<frame>`` (``.npy``) or ``<file>#<key>:<frame>``
(``.npz`` member ``key``), ``container`` = the file's path, ``array_key`` = the member
('' for .npy) and ``frame`` = the index along the stack's first axis. Files keep NULLs.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 11:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('container', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('array_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('frame', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_images_container'), ['container'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_container'))
        batch_op.drop_column('frame')
        batch_op.drop_column('array_key')
        batch_op.drop_column('container')
