"""stack_parts and sensor_claims: a PostgreSQL database keeps a stack detector's parts, and
every database knows which frames a live writer is counting

``stack_parts``: the per-pixel statistics of each stack of a stack detector
(``index --sensor NAME``), one row per stack (``.npz`` bytes), on PostgreSQL; before, they
were files in ``~/.cache/photoqa/sensors/<hash>/`` of whoever indexed, imported on first
use (``indexer.pipeline.stackrun``). SQLite keeps its ``<database>.sensors/`` folder.

``sensor_claims``: a frame (by SHA-256) a writer has added to its in-memory statistics and
not flushed yet, with the writer's token; another writer (another machine) does not count
it too. The flush that enters the frame in ``sensor_frames`` deletes its claim in the
same transaction.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 16:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'stack_parts',
        sa.Column('sensor_id', sa.Integer(), nullable=False),
        sa.Column('stack_key', sa.String(length=64), nullable=False),
        sa.Column('stack', sa.Text(), nullable=False),
        sa.Column('source', sa.String(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['sensor_id'], ['sensors.id'], name=op.f('fk_stack_parts_sensor_id_sensors'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sensor_id', 'stack_key', name=op.f('pk_stack_parts')),
    )
    op.create_table(
        'sensor_claims',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('sensor_id', sa.Integer(), nullable=False),
        sa.Column('owner', sa.Integer(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['sensor_id'], ['sensors.id'], name=op.f('fk_sensor_claims_sensor_id_sensors'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sha256', name=op.f('pk_sensor_claims')),
    )
    with op.batch_alter_table('sensor_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sensor_claims_owner'), ['owner'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sensor_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sensor_claims_owner'))
    op.drop_table('sensor_claims')
    op.drop_table('stack_parts')
