"""sensors.stable_since / stable_since_at: when a sensor's defect list last changed

``stable_since`` is the sensor's frame count at the flush that last changed its defect
list (0: never), ``stable_since_at`` the time of that flush; the learning budget
(``indexer.sensor.budget``) maps a body from every frame until its list has stood still
for ``[sensor] stable_frames`` frames. Existing sensors start at 0 / NULL: a map already
learnt counts as unchanged since its first frame. The ``defects`` view (0010) reads
sensors, and SQLite's batch mode may rebuild the table under it: it is dropped first and
recreated unchanged.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


VIEW = """
CREATE VIEW defects AS
SELECT d.sensor_id, c.make, c.model, c.serial, s.width, s.height, s.kind AS sensor_kind,
       s.frames AS sensor_frames, d.x, d.y, d.kind, d.rate, d.mean_residual, d.frames,
       d.first_seen, d.last_seen
FROM sensor_defects d
JOIN sensors s ON s.id = d.sensor_id
JOIN cameras c ON c.id = s.camera_id
"""


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS defects")
    with op.batch_alter_table('sensors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stable_since', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('stable_since_at', sa.DateTime(), nullable=True))
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS defects")
    with op.batch_alter_table('sensors', schema=None) as batch_op:
        batch_op.drop_column('stable_since_at')
        batch_op.drop_column('stable_since')
    op.execute(VIEW)
