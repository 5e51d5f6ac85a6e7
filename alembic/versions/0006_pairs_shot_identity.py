"""pairs: shot identity (same_camera, same_shot); pairs found by the old rules are matched again

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 17:40:00

Two nullable booleans per pair say what metadata tells of the two files
(indexer/match/shots.py): the same camera body or not, the same shot (one capture) or
not; NULL when unknown. The verdicts changed meaning with them: ``exposure_variant`` is
now another exposure (a related shot, no longer a default duplicate), an exposure edit of
one capture is ``derived``, and ``raw_jpeg`` is new. Pairs stored by the old rules would
keep their old verdicts, so they are dropped with their groups and every image is marked
unmatched (``images.matched_at`` NULL): the next ``photoqa index`` or ``watch`` matches
the archive again. Downgrade drops the columns (pairs stay as the new rules found them).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('same_camera', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('same_shot', sa.Boolean(), nullable=True))
    op.execute("DELETE FROM image_groups")
    op.execute("DELETE FROM pairs")
    op.execute("UPDATE images SET matched_at = NULL")


def downgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.drop_column('same_shot')
        batch_op.drop_column('same_camera')
