"""Repositories over one connection: tasks and their content items.

They map rows to domain values and back; they never decide anything. A status is written only
through `TaskRepository.save`, which the state machine's service calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.tables import content_items, job_inbox, roadmap_tasks
from shared.domain import ItemCounts, ItemKey, ItemStatus, Status, TaskState

_STATE_COLUMNS = (
    roadmap_tasks.c.task_id,
    roadmap_tasks.c.roadmap_id,
    roadmap_tasks.c.owner_id,
    roadmap_tasks.c.status,
    roadmap_tasks.c.current_step,
    roadmap_tasks.c.error_message,
    roadmap_tasks.c.completed_at,
    roadmap_tasks.c.seq,
)


def _state(row: Any) -> TaskState:
    return TaskState(
        task_id=row.task_id,
        roadmap_id=row.roadmap_id,
        owner_id=row.owner_id,
        status=Status(row.status),
        current_step=row.current_step,
        error_message=row.error_message,
        completed_at=row.completed_at,
        seq=row.seq,
    )


class TaskRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, state: TaskState, now: datetime) -> None:
        await self._conn.execute(
            roadmap_tasks.insert().values(
                task_id=state.task_id,
                roadmap_id=state.roadmap_id,
                owner_id=state.owner_id,
                status=state.status.value,
                current_step=state.current_step,
                seq=state.seq,
                created_at=now,
                updated_at=now,
            )
        )

    async def lock(self, task_id: UUID, *, nowait: bool = False) -> TaskState | None:
        """Read the task and lock its row until the transaction ends."""
        query = _LOCK_NOWAIT if nowait else _LOCK
        row = (await self._conn.execute(query, {"b_task_id": task_id})).first()
        return _state(row) if row else None

    async def save(self, state: TaskState, now: datetime) -> None:
        await self._conn.execute(
            _SAVE,
            {
                "b_task_id": state.task_id,
                "status": state.status.value,
                "current_step": state.current_step,
                "error_message": state.error_message,
                "completed_at": state.completed_at,
                "seq": state.seq,
                "updated_at": now,
            },
        )

    async def view_row(self, task_id: UUID) -> tuple[Any, ItemCounts] | None:
        """Every column of the task and its item counts, in one round trip; None if unknown."""
        row = (await self._conn.execute(_VIEW, {"b_task_id": task_id})).first()
        if row is None:
            return None
        return row, ItemCounts.from_rows([(t, s, int(n)) for t, s, n in row.item_counts])


class ItemRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_many(
        self, task_id: UUID, items: Sequence[tuple[ItemKey, str]], now: datetime
    ) -> None:
        """Insert (key, concept title) pairs in generation order."""
        await self._conn.execute(
            content_items.insert(),
            [
                {
                    "task_id": task_id,
                    "concept_id": key.concept_id,
                    "content_type": key.content_type,
                    "position": position,
                    "concept_title": title,
                    "updated_at": now,
                }
                for position, (key, title) in enumerate(items)
            ],
        )

    async def reset_unfinished(self, task_id: UUID, now: datetime) -> list[ItemKey]:
        """Set every item that is not completed back to pending; the items, in order."""
        rows = await self._conn.execute(_RESET, {"b_task_id": task_id, "updated_at": now})
        ordered = sorted(rows, key=lambda r: r.position)
        return [ItemKey(r.concept_id, r.content_type) for r in ordered]

    async def counts(self, task_id: UUID) -> ItemCounts:
        rows = [
            (r[0], r[1], int(r[2]))
            for r in await self._conn.execute(_COUNTS, {"b_task_id": task_id})
        ]
        return ItemCounts.from_rows(rows)


# The hot statements are built once, with bound parameters, so SQLAlchemy compiles each one a
# single time and every request reuses it (and asyncpg its prepared statement).
_TASK = roadmap_tasks.c.task_id == bindparam("b_task_id")
_LOCK = select(*_STATE_COLUMNS).where(_TASK).with_for_update()
_LOCK_NOWAIT = select(*_STATE_COLUMNS).where(_TASK).with_for_update(nowait=True)
_SAVE = update(roadmap_tasks).where(_TASK)
_VIEW = text(
    "SELECT t.*, coalesce((SELECT jsonb_agg(jsonb_build_array(content_type, status, n)) "
    "FROM (SELECT content_type, status, count(*) AS n FROM content_items "
    "WHERE task_id = t.task_id GROUP BY content_type, status) AS c), '[]') AS item_counts "
    "FROM roadmap_tasks AS t WHERE t.task_id = :b_task_id"
).columns(item_counts=JSONB)
_ITEMS_OF_TASK = content_items.c.task_id == bindparam("b_task_id")
_RESET = (
    update(content_items)
    .where(_ITEMS_OF_TASK, content_items.c.status != ItemStatus.COMPLETED.value)
    .values(status=ItemStatus.PENDING.value)
    .returning(content_items.c.concept_id, content_items.c.content_type, content_items.c.position)
)
_COUNTS = (
    select(content_items.c.content_type, content_items.c.status, func.count())
    .where(_ITEMS_OF_TASK)
    .group_by(content_items.c.content_type, content_items.c.status)
)


# --- The worker's repositories: items in generation order, task leases, the job inbox. ---


@dataclass(frozen=True, slots=True)
class PendingItem:
    """An item still to generate, with what the content generator is told about it."""

    key: ItemKey
    concept_title: str
    attempts: int
    """Tries counted so far; the next one is attempt `attempts + 1`."""


class WorkItemRepository:
    """The worker's view of content items: the next one to generate, and storing a result."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def next_pending(self, task_id: UUID) -> PendingItem | None:
        query = (
            select(
                content_items.c.concept_id,
                content_items.c.content_type,
                content_items.c.concept_title,
                content_items.c.attempts,
            )
            .where(content_items.c.task_id == task_id)
            .where(content_items.c.status == ItemStatus.PENDING.value)
            .order_by(content_items.c.position)
            .limit(1)
        )
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        return PendingItem(
            ItemKey(row.concept_id, row.content_type), row.concept_title, row.attempts
        )

    async def pending_keys(self, task_id: UUID) -> list[ItemKey]:
        query = (
            select(content_items.c.concept_id, content_items.c.content_type)
            .where(content_items.c.task_id == task_id)
            .where(content_items.c.status == ItemStatus.PENDING.value)
            .order_by(content_items.c.position)
        )
        return [ItemKey(r.concept_id, r.content_type) for r in await self._conn.execute(query)]

    async def store_result(
        self, task_id: UUID, key: ItemKey, *, content: Any, error: str | None, now: datetime
    ) -> bool:
        """Store a pending item's result and count the attempt; False if it was not pending."""
        done = ItemStatus.FAILED if error is not None else ItemStatus.COMPLETED
        values: dict[str, Any] = {
            "status": done.value,
            "attempts": content_items.c.attempts + 1,
            "last_error": error,
            "updated_at": now,
        }
        if error is None:
            values["content"] = content
        result = await self._conn.execute(
            update(content_items)
            .where(content_items.c.task_id == task_id)
            .where(content_items.c.concept_id == key.concept_id)
            .where(content_items.c.content_type == key.content_type)
            .where(content_items.c.status == ItemStatus.PENDING.value)
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0))


class LeaseRepository:
    """Task leases: one live job per task, proved by renewing before `expires_at` (DB clock)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def acquire(self, task_id: UUID, holder: str, seconds: float) -> bool:
        """Take the lease if it is free, lapsed, or already ours."""
        result = await self._conn.execute(
            text(
                "INSERT INTO task_leases (task_id, holder, expires_at, updated_at) "
                "VALUES (:t, :h, now() + make_interval(secs => :s), now()) "
                "ON CONFLICT (task_id) DO UPDATE SET holder = EXCLUDED.holder, "
                "expires_at = EXCLUDED.expires_at, updated_at = now() "
                "WHERE task_leases.holder IS NULL OR task_leases.holder = EXCLUDED.holder "
                "OR task_leases.expires_at < now() RETURNING task_id"
            ),
            {"t": task_id, "h": holder, "s": seconds},
        )
        return result.first() is not None

    async def renew(self, task_id: UUID, holder: str, seconds: float) -> bool:
        """Extend our lease; False if it is no longer ours (taken back by the watchdog)."""
        result = await self._conn.execute(
            text(
                "UPDATE task_leases SET expires_at = now() + make_interval(secs => :s), "
                "updated_at = now() WHERE task_id = :t AND holder = :h"
            ),
            {"t": task_id, "h": holder, "s": seconds},
        )
        return bool(getattr(result, "rowcount", 0))

    async def release(self, task_id: UUID, holder: str, *, keep_resumes: bool) -> bool:
        """Free the lease if `holder` has it; True if it did."""
        result = await self._conn.execute(
            text(
                "UPDATE task_leases SET holder = NULL, expires_at = NULL, updated_at = now(), "
                "resumes = CASE WHEN :keep THEN resumes ELSE 0 END "
                "WHERE task_id = :t AND holder = :h"
            ),
            {"t": task_id, "h": holder, "keep": keep_resumes},
        )
        return bool(getattr(result, "rowcount", 0))

    async def forget(self, task_id: UUID) -> None:
        """No holder and no losses counted: the task is out of `processing`."""
        await self._conn.execute(
            text(
                "UPDATE task_leases SET holder = NULL, expires_at = NULL, resumes = 0, "
                "updated_at = now() WHERE task_id = :t"
            ),
            {"t": task_id},
        )

    async def lapsed(self, limit: int) -> list[UUID]:
        """Tasks whose lease holder stopped renewing in time."""
        result = await self._conn.execute(
            text(
                "SELECT task_id FROM task_leases WHERE holder IS NOT NULL AND expires_at < now() "
                "ORDER BY expires_at LIMIT :n"
            ),
            {"n": limit},
        )
        return [row[0] for row in result]

    async def take_lapsed(self, task_id: UUID) -> tuple[str, int] | None:
        """Take a lapsed lease back: (its dead holder, resumes so far), or None if alive/free."""
        result = await self._conn.execute(
            text(
                "UPDATE task_leases t SET holder = NULL, expires_at = NULL, "
                "resumes = t.resumes + 1, updated_at = now() FROM task_leases old "
                "WHERE t.task_id = :t AND old.task_id = t.task_id AND t.holder IS NOT NULL "
                "AND t.expires_at < now() RETURNING old.holder, old.resumes"
            ),
            {"t": task_id},
        )
        row = result.first()
        return (str(row[0]), int(row[1])) if row else None


class InboxRepository:
    """Job messages already turned into RQ jobs, by AMQP `message_id`."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def seen(self, message_id: UUID) -> bool:
        query = select(job_inbox.c.message_id).where(job_inbox.c.message_id == message_id)
        return (await self._conn.execute(query)).first() is not None

    async def record(self, message_id: UUID, task_id: UUID, job_id: str) -> None:
        await self._conn.execute(
            insert(job_inbox)
            .values(message_id=message_id, task_id=task_id, job_id=job_id)
            .on_conflict_do_nothing(index_elements=["message_id"])
        )

    async def task_exists(self, task_id: UUID) -> bool:
        query = select(roadmap_tasks.c.task_id).where(roadmap_tasks.c.task_id == task_id)
        return (await self._conn.execute(query)).first() is not None

    async def purge(self, older_than_seconds: float, limit: int = 1000) -> int:
        result = await self._conn.execute(
            text(
                "DELETE FROM job_inbox WHERE message_id IN (SELECT message_id FROM job_inbox "
                "WHERE received_at < now() - make_interval(secs => :s) LIMIT :n)"
            ),
            {"s": older_than_seconds, "n": limit},
        )
        return int(getattr(result, "rowcount", 0) or 0)
