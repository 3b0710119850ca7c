"""A task's item counts on its own row, so an item's notification counts without a scan.

`roadmap_tasks.items_total`, `items_completed` and `items_failed` (pending is the rest) are kept
by the statements that change `content_items.status` (`shared.adapters.postgres.items`: adding a
task's items, the retry's reset, storing a result), in the same statement, so they are exact at
every commit.
Existing rows are backfilled from their items here.

Revision ID: 0006_item_counters
Revises: 0005_task_page
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_item_counters"
down_revision: str | None = "0005_task_page"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("items_total", "items_completed", "items_failed")


def upgrade() -> None:
    for name in COUNTERS:
        op.add_column(
            "roadmap_tasks",
            sa.Column(name, sa.Integer, nullable=False, server_default=sa.text("0")),
        )
    op.execute(
        "UPDATE roadmap_tasks AS t SET items_total = c.total, items_completed = c.completed, "
        "items_failed = c.failed FROM (SELECT task_id, count(*) AS total, "
        "count(*) FILTER (WHERE status = 'completed') AS completed, "
        "count(*) FILTER (WHERE status = 'failed') AS failed "
        "FROM content_items GROUP BY task_id) AS c WHERE t.task_id = c.task_id"
    )


def downgrade() -> None:
    for name in reversed(COUNTERS):
        op.drop_column("roadmap_tasks", name)
