"""Whose turn is next: a task's wait for a worker, and each user's last turn.

`roadmap_tasks.waiting_since` is when the task became runnable (a job dispatch was written for
it) and no job has taken it since; `deferrals` counts the times in a row its job gave its turn
to a fairer user's task. `user_turns` holds when each user's task last took a worker: the
scheduler (`shared.adapters.postgres.turns`) serves the user whose turn is the oldest
(docs/worker.md).

Revision ID: 0007_fair_turns
Revises: 0006_item_counters
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_fair_turns"
down_revision: str | None = "0006_item_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("roadmap_tasks", sa.Column("waiting_since", sa.DateTime(timezone=True)))
    op.add_column(
        "roadmap_tasks",
        sa.Column("deferrals", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    # Tasks that wait now: since their last change (a close enough start for a live upgrade).
    op.execute(
        "UPDATE roadmap_tasks SET waiting_since = updated_at WHERE status IN "
        "('pending', 'processing') AND NOT EXISTS (SELECT FROM task_leases l WHERE "
        "l.task_id = roadmap_tasks.task_id AND l.holder IS NOT NULL)"
    )
    op.create_index(
        "roadmap_tasks_waiting_idx",
        "roadmap_tasks",
        ["waiting_since"],
        postgresql_where=sa.text("waiting_since IS NOT NULL"),
    )
    op.create_table(
        "user_turns",
        sa.Column("owner_id", sa.Text, primary_key=True),
        sa.Column("last_turn_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_turns")
    op.drop_index("roadmap_tasks_waiting_idx", table_name="roadmap_tasks")
    op.drop_column("roadmap_tasks", "deferrals")
    op.drop_column("roadmap_tasks", "waiting_since")
