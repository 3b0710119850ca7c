"""The tables, as SQLAlchemy Core metadata; the migrations create them, the repositories use them.

`roadmap_tasks` is read by outside tools (protocol §4). The outbox is designed for the relay:
rows of one task are inserted under that task's row lock, so their `id` order is their commit
order; unpublished rows are found through a partial index; every row carries a stable
`message_id` that the relay sends on every publication of it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

roadmap_tasks = Table(
    "roadmap_tasks",
    metadata,
    Column("task_id", UUID(as_uuid=True), primary_key=True),
    Column("roadmap_id", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("current_step", Text),
    Column("error_message", Text),
    Column("completed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("seq", BigInteger, nullable=False, server_default=text("0")),
    Column("last_message", Text),
    # Kept by the statements that change content_items.status (shared.adapters.postgres.items), in
    # the same statement: an item notification's counts without a scan of the task's items.
    Column("items_total", Integer, nullable=False, server_default=text("0")),
    Column("items_completed", Integer, nullable=False, server_default=text("0")),
    Column("items_failed", Integer, nullable=False, server_default=text("0")),
    # The scheduler's (shared.adapters.postgres.turns): since when the task waits for a worker (set
    # with every job dispatch, cleared when a job takes it), and how often in a row its job
    # gave way.
    Column("waiting_since", DateTime(timezone=True)),
    Column("deferrals", Integer, nullable=False, server_default=text("0")),
    CheckConstraint(
        "status IN ('pending','processing','completed','partial_failure','failed','cancelled')",
        name="roadmap_tasks_status_check",
    ),
    Index("roadmap_tasks_owner_idx", "owner_id", "created_at"),
    Index(
        "roadmap_tasks_active_idx",
        "updated_at",
        postgresql_where=text("status IN ('pending', 'processing')"),
    ),
    Index(
        "roadmap_tasks_waiting_idx",
        "waiting_since",
        postgresql_where=text("waiting_since IS NOT NULL"),
    ),
)

user_turns = Table(
    "user_turns",
    metadata,
    Column("owner_id", Text, primary_key=True),
    Column("last_turn_at", DateTime(timezone=True), nullable=False),
)
"""When each user's task last took a worker: the oldest turn goes next (docs/worker.md)."""

content_items = Table(
    "content_items",
    metadata,
    Column(
        "task_id",
        UUID(as_uuid=True),
        ForeignKey("roadmap_tasks.task_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("concept_id", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("concept_title", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("content", JSONB),
    Column("usage", JSONB),  # the generator's token usage, when it reported one
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("task_id", "concept_id", "content_type", name="content_items_pkey"),
    CheckConstraint(
        "status IN ('pending','completed','failed')", name="content_items_status_check"
    ),
    Index("content_items_position_idx", "task_id", "position", unique=True),
    Index("content_items_status_idx", "task_id", "status", "position"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("task_id", UUID(as_uuid=True), nullable=False),
    Column("partition_key", SmallInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("routing_key", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    ),
    Column("published_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("parked_at", DateTime(timezone=True)),
    CheckConstraint("kind IN ('notification','job')", name="outbox_kind_check"),
    Index(
        "outbox_unpublished_idx",
        "id",
        postgresql_where=text("published_at IS NULL AND parked_at IS NULL"),
    ),
    Index(
        "outbox_published_idx",
        "published_at",
        postgresql_where=text("published_at IS NOT NULL"),
    ),
    Index(
        "outbox_retry_idx",
        "task_id",
        "id",
        postgresql_where=text(
            "published_at IS NULL AND parked_at IS NULL AND next_attempt_at IS NOT NULL"
        ),
    ),
    Index("outbox_parked_idx", "id", postgresql_where=text("parked_at IS NOT NULL")),
    Index("outbox_task_jobs_idx", "task_id", "id", postgresql_where=text("kind = 'job'")),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("owner_id", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("response_status", Integer, nullable=False),
    Column("response_body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("owner_id", "key", name="idempotency_keys_pkey"),
    Index("idempotency_keys_created_idx", "created_at"),
)

job_inbox = Table(
    "job_inbox",
    metadata,
    Column("message_id", UUID(as_uuid=True), primary_key=True),
    Column("task_id", UUID(as_uuid=True), nullable=False),
    Column("job_id", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("job_inbox_received_idx", "received_at"),
    Index("job_inbox_task_idx", "task_id", "received_at"),
)
"""Job messages the worker turned into RQ jobs, by AMQP `message_id` (the dedupe record)."""

task_leases = Table(
    "task_leases",
    metadata,
    Column(
        "task_id",
        UUID(as_uuid=True),
        ForeignKey("roadmap_tasks.task_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("holder", Text),
    Column("expires_at", DateTime(timezone=True)),
    Column("recoveries", Integer, nullable=False, server_default=text("0")),
    Column("generation", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("task_leases_expiry_idx", "expires_at", postgresql_where=text("holder IS NOT NULL")),
)
"""Which RQ job generates a task's items, until when; a lapsed lease means a lost worker."""
