"""The worker's inbox of job messages and its leases on running tasks.

`job_inbox` remembers every job message (by its AMQP `message_id`) that became an RQ job, so a
redelivered or duplicated message is acknowledged without a second job. `task_leases` says which
job is generating a task's items and until when it has proved to be alive; the watchdog takes an
expired lease back and resumes or fails the task (docs/worker.md).

Revision ID: 0003_worker
Revises: 0002_relay_indexes
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0003_worker"
down_revision: str | None = "0002_relay_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
UUID = pg.UUID(as_uuid=True)


def upgrade() -> None:
    op.create_table(
        "job_inbox",
        sa.Column("message_id", UUID, primary_key=True),
        sa.Column("task_id", UUID, nullable=False),
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("received_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("job_inbox_received_idx", "job_inbox", ["received_at"])
    op.create_table(
        "task_leases",
        sa.Column(
            "task_id",
            UUID,
            sa.ForeignKey("roadmap_tasks.task_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("holder", sa.Text),
        sa.Column("expires_at", TZ),
        sa.Column("resumes", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index(
        "task_leases_expiry_idx",
        "task_leases",
        ["expires_at"],
        postgresql_where=sa.text("holder IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("task_leases")
    op.drop_table("job_inbox")
