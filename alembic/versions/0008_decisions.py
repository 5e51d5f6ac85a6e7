"""decisions: a user's "not duplicates" and "keep this one", which matching never overrides

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('other_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_decisions_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['other_id'], ['images.id'], name=op.f('fk_decisions_other_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions'))
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decisions_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisions_other_id'), ['other_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_other_id'))
        batch_op.drop_index(batch_op.f('ix_decisions_image_id'))
    op.drop_table('decisions')
