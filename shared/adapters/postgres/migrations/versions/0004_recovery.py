"""What the reconciler needs to find tasks without live work, and the lease's fencing token.

- `task_leases.generation` grows by one every time a job takes the lease; a job writes an item
  only while the lease still carries the generation it took, so a job whose lease was taken
  back can write nothing for that task (fencing).
- `task_leases.resumes` becomes `recoveries`: the recoveries in a row without progress, after
  which the reconciler fails the task.
- `outbox_task_jobs_idx`: a task's latest job dispatch, found without scanning its
  notifications.
- `job_inbox_task_idx`: the RQ job of a task's latest job message.
- `roadmap_tasks_active_idx`: the tasks that must have live work (`pending`, `processing`),
  oldest change first.

Revision ID: 0004_recovery
Revises: 0003_worker
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_recovery"
down_revision: str | None = "0003_worker"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "task_leases",
        sa.Column("generation", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.alter_column("task_leases", "resumes", new_column_name="recoveries")
    op.create_index(
        "outbox_task_jobs_idx",
        "outbox",
        ["task_id", "id"],
        postgresql_where=sa.text("kind = 'job'"),
    )
    op.create_index("job_inbox_task_idx", "job_inbox", ["task_id", "received_at"])
    op.create_index(
        "roadmap_tasks_active_idx",
        "roadmap_tasks",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('pending', 'processing')"),
    )


def downgrade() -> None:
    op.drop_index("roadmap_tasks_active_idx", table_name="roadmap_tasks")
    op.drop_index("job_inbox_task_idx", table_name="job_inbox")
    op.drop_index("outbox_task_jobs_idx", table_name="outbox")
    op.alter_column("task_leases", "recoveries", new_column_name="resumes")
    op.drop_column("task_leases", "generation")
