"""pairs: every pixel measure the verdict reads (peak, overlaps, grey/tile/blurred correlations, changed and edited area)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:50:00

The verdict rules (indexer/match/verdict.py) read more of the pixel evidence than the
columns of 0002 kept: the phase-correlation peak, how much of each image the other
covers, the plain-grey and worst-tile correlations, the same after a 1-pixel blur
(copies resampled on another grid), the changed-pixel fraction and the area, sign and
outside-correlation of a one-sided edit (captions, logos). Stored, a verdict can be
checked in SQL. NULL for pairs found before this revision and for equal files (nothing
is measured).
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

MEASURES = ('peak', 'overlap_a', 'overlap_b', 'corr_grey', 'corr_tile', 'corr_smooth', 'tile_smooth',
            'changed', 'edit_area', 'edit_sign', 'outside_corr')


def upgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        for name in MEASURES:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        for name in reversed(MEASURES):
            batch_op.drop_column(name)
