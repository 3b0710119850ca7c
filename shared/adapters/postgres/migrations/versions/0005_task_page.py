"""What the task page reads: the latest update of a task, and its items page by page.

- `roadmap_tasks.last_message`: the `message` of the task's latest notification, written by the
  same UPDATE that bumps `seq`, so a page opened mid-run or after the end shows it at once.
- `content_items_position_idx`: a task's items in their stable order (`position` is unique per
  task), so `GET .../items` pages by keyset (`position > cursor`), never by OFFSET.
- `content_items_status_idx`: the same order within one status, for `?status=`.

Revision ID: 0005_task_page
Revises: 0004_recovery
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_task_page"
down_revision: str | None = "0004_recovery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("roadmap_tasks", sa.Column("last_message", sa.Text))
    op.create_index(
        "content_items_position_idx", "content_items", ["task_id", "position"], unique=True
    )
    op.create_index("content_items_status_idx", "content_items", ["task_id", "status", "position"])


def downgrade() -> None:
    op.drop_index("content_items_status_idx", table_name="content_items")
    op.drop_index("content_items_position_idx", table_name="content_items")
    op.drop_column("roadmap_tasks", "last_message")
