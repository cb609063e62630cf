"""cluster member counts are counted, not stored

A cluster's member count and first and last detection dates were kept up to date by every
detection that joined or left it, which serialised concurrent posts on the cluster rows (and on
PostgreSQL needed a database-wide lock to stay right). They are now counted from the cluster's
active detections when shown.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 08:15:19.956874
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 has it): a batch-mode table rebuild of
    # `cluster` would be refused on SQLite while detections refer to it.
    for column in ("member_count", "first_seen_on", "last_seen_on"):
        op.drop_column("cluster", column)


def downgrade() -> None:
    op.add_column("cluster", sa.Column("first_seen_on", sa.DATE(), nullable=True))
    op.add_column("cluster", sa.Column("last_seen_on", sa.DATE(), nullable=True))
    op.add_column(
        "cluster", sa.Column("member_count", sa.INTEGER(), nullable=False, server_default="0")
    )
    # Recount what the columns held: the cluster's active detections and their date range.
    active = "detection.cluster_id = cluster.id AND detection.status = 'active'"
    op.execute(
        "UPDATE cluster SET "
        f"member_count = (SELECT count(*) FROM detection WHERE {active}), "
        f"first_seen_on = (SELECT min(detected_on) FROM detection WHERE {active}), "
        f"last_seen_on = (SELECT max(detected_on) FROM detection WHERE {active})"
    )
