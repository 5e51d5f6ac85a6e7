"""pairs.detail_gain / detail_above: is the bigger side of a resized pair an upscale?

The detail of the bigger side at native size against the smaller side's
(``indexer.measure.detail``), measured by the matching stage for pairs of a group verdict
whose sides differ in size by 1.25x or more; the keeper rule does not count the pixels of
an upscale (``indexer.match.upscale``, issue 14). Existing pairs keep NULL (not measured:
the pixel count decides as before) until ``photoqa dupes --rematch`` or a re-index.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 13:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detail_gain', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('detail_above', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.drop_column('detail_above')
        batch_op.drop_column('detail_gain')
