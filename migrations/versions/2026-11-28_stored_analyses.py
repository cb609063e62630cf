"""stored analyses

Analyses of submitted structures, shared by the service's processes (app/analysis_store.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 08:53:27.213058
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('stored_analysis',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline', sa.String(length=64), nullable=False),
    sa.Column('input_type', sa.String(length=10), nullable=False),
    sa.Column('input_hash', sa.String(length=64), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_analysis')),
    sa.UniqueConstraint('pipeline', 'input_type', 'input_hash', name=op.f('uq_stored_analysis_pipeline_input_type_input_hash'))
    )
    with op.batch_alter_table('stored_analysis', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stored_analysis_created_at'), ['created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('stored_analysis', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stored_analysis_created_at'))

    op.drop_table('stored_analysis')
