"""Tasks, content items, the outbox with its NOTIFY trigger, and idempotency records.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
UUID = pg.UUID(as_uuid=True)


def upgrade() -> None:
    op.create_table(
        "roadmap_tasks",
        sa.Column("task_id", UUID, primary_key=True),
        sa.Column("roadmap_id", sa.Text, nullable=False),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("current_step", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("completed_at", TZ),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint(
            "status IN ('pending','processing','completed','partial_failure','failed','cancelled')",
            name="roadmap_tasks_status_check",
        ),
    )
    op.create_index("roadmap_tasks_owner_idx", "roadmap_tasks", ["owner_id", "created_at"])
    op.create_table(
        "content_items",
        sa.Column(
            "task_id",
            UUID,
            sa.ForeignKey("roadmap_tasks.task_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("concept_id", sa.Text, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("concept_title", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
        sa.Column("content", pg.JSONB),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("task_id", "concept_id", "content_type", name="content_items_pkey"),
        sa.CheckConstraint(
            "status IN ('pending','completed','failed')", name="content_items_status_check"
        ),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("message_id", UUID, nullable=False, unique=True),
        sa.Column("task_id", UUID, nullable=False),
        sa.Column("partition_key", sa.SmallInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("routing_key", sa.Text, nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.clock_timestamp()),
        sa.Column("published_at", TZ),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", TZ),
        sa.Column("last_error", sa.Text),
        sa.Column("parked_at", TZ),
        sa.CheckConstraint("kind IN ('notification','job')", name="outbox_kind_check"),
    )
    op.create_index(
        "outbox_unpublished_idx",
        "outbox",
        ["id"],
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )
    op.create_index(
        "outbox_published_idx",
        "outbox",
        ["published_at"],
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )
    # A NOTIFY per writing transaction (PostgreSQL folds repeats): relays wake on commit.
    op.execute(
        """
        CREATE FUNCTION taskrelay_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('taskrelay_outbox', '');
            RETURN NULL;
        END $$;
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION taskrelay_outbox_notify()"
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("response_status", sa.Integer, nullable=False),
        sa.Column("response_body", pg.JSONB, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("owner_id", "key", name="idempotency_keys_pkey"),
    )
    op.create_index("idempotency_keys_created_idx", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION taskrelay_outbox_notify()")
    op.drop_table("outbox")
    op.drop_table("content_items")
    op.drop_table("roadmap_tasks")
