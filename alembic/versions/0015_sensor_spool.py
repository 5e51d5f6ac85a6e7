"""sensor_spool: a PostgreSQL writer's young bodies' frames survive it being killed

A body below ``[sensor] min_frames`` is not flushed on the clock, so until its first
flush its frames' statistics live only in the writer's memory while their files are
already indexed; a SQLite database keeps a copy of each such frame in
``<database>.sensors/pending/``. A PostgreSQL database now keeps them here, one row per
frame with the writer's token (``owner``, as in ``sensor_claims``), deleted once a flush
has counted the frame; the next writer counts the rows of owners that died. SQLite
leaves the table empty.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 19:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sensor_spool',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('owner', sa.Integer(), nullable=False),
        sa.Column('sensor_id', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['sensor_id'], ['sensors.id'], name=op.f('fk_sensor_spool_sensor_id_sensors'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sensor_spool')),
    )
    with op.batch_alter_table('sensor_spool', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sensor_spool_owner'), ['owner'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sensor_spool', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sensor_spool_owner'))
    op.drop_table('sensor_spool')
