"""sensor_defects.first_seen / last_seen: when each defect appeared and was last seen

The ``defects`` view (0002) reads sensor_defects, and SQLite's batch mode rebuilds the
table under it: the view is dropped first and recreated with the new columns.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 11:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

VIEW_HEAD = """
CREATE VIEW defects AS
SELECT d.sensor_id, c.make, c.model, c.serial, s.width, s.height, s.kind AS sensor_kind,
       s.frames AS sensor_frames, d.x, d.y, d.kind, d.rate, d.mean_residual, d.frames"""
VIEW_TAIL = """
FROM sensor_defects d
JOIN sensors s ON s.id = d.sensor_id
JOIN cameras c ON c.id = s.camera_id
"""


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS defects")
    with op.batch_alter_table('sensor_defects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_seen', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_seen', sa.DateTime(), nullable=True))
    op.execute(VIEW_HEAD + ", d.first_seen, d.last_seen" + VIEW_TAIL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS defects")
    with op.batch_alter_table('sensor_defects', schema=None) as batch_op:
        batch_op.drop_column('last_seen')
        batch_op.drop_column('first_seen')
    op.execute(VIEW_HEAD + VIEW_TAIL)
