"""images.revision (a change number) and photoqa_meta (the database's instance id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:40:00

``images.revision`` is set to one more than the table's highest revision by every write
that changes what the matching index sees of a row (stored or re-indexed, moved back,
marked missing). The matching stage saves its built index beside the database with the
highest revision it had read, and at the next start reads only the rows changed since
(an index on the column): a million-image archive starts in a fraction of a second
instead of reading every row. Rows that exist at upgrade time get their id. An index on
``missing_since`` lets it count the present rows from that index instead of scanning the
table (docs/BENCHMARKS.md has the figures), which is how it notices rows deleted since.

``photoqa_meta`` holds key/value facts about the database itself; ``instance`` is a
random id made here, so a saved index is never applied to another database that
happens to live at the same path.
"""
import uuid

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_images_revision', ['revision'], unique=False)
        batch_op.create_index('ix_images_missing_since', ['missing_since'], unique=False)
    op.execute("UPDATE images SET revision = id")
    meta = op.create_table(
        'photoqa_meta',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_photoqa_meta')),
    )
    op.bulk_insert(meta, [{'key': 'instance', 'value': uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table('photoqa_meta')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_missing_since')
        batch_op.drop_index('ix_images_revision')
        batch_op.drop_column('revision')
