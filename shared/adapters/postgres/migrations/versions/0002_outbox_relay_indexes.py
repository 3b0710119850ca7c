"""Indexes the relay needs: rows waiting for a retry, and parked rows.

`outbox_retry_idx` holds only unpublished rows that failed and wait for `next_attempt_at`;
the relay's claim probes it to keep a task's later rows behind its earlier, delayed one.
`outbox_parked_idx` keeps the parked count (shown on /health) cheap on a large table.

Revision ID: 0002_relay_indexes
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_relay_indexes"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "outbox_retry_idx",
        "outbox",
        ["task_id", "id"],
        postgresql_where=sa.text(
            "published_at IS NULL AND parked_at IS NULL AND next_attempt_at IS NOT NULL"
        ),
    )
    op.create_index(
        "outbox_parked_idx",
        "outbox",
        ["id"],
        postgresql_where=sa.text("parked_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("outbox_parked_idx", table_name="outbox")
    op.drop_index("outbox_retry_idx", table_name="outbox")
