"""The `roadmap_tasks` repository: a task's state, its owner, and its view (`TaskView`).

It maps rows to domain values and back; it never decides anything. Every statement that writes
only this table is here. Four statements write it together with another table, each in one
statement for speed, and each lives with that other table (docs/architecture.md, "Data
access"): a status, step and `seq` only by `OutboxWriter.emit` (`outbox/writer.py`), with the
notification that tells of it, which the state machine's service (`shared.service.transitions`)
calls, and `waiting_since` by the writer's job dispatches; the item counters by the item
statements that change them (`items.py`); `waiting_since` and `deferrals` cleared when a job
takes its user's turn (`turns.py`). Every API request runs these statements: plain prepared SQL
(`shared.adapters.postgres.sql`) on the unit of work's asyncpg connection, mirroring
`shared.adapters.postgres.tables`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from shared.adapters.postgres.sql import Connection
from shared.domain import ItemCounts, Status, TaskFilter, TaskState, TaskSummary, TaskView

STATE = "task_id, roadmap_id, owner_id, status, current_step, error_message, completed_at, seq"
_LOCK = f"SELECT {STATE} FROM roadmap_tasks WHERE task_id = $1 FOR UPDATE"
_LOCK_UNLESS_BUSY = f"{_LOCK} SKIP LOCKED"
_LOCK_OWNED = f"SELECT {STATE} FROM roadmap_tasks WHERE task_id = $1 AND owner_id = $2 FOR UPDATE"
"""The owner is checked before the lock: a row that fails the filter is never locked (nor
waited for), so another user who learns a task id cannot hold its lock against the worker."""
_OWNER = "SELECT owner_id FROM roadmap_tasks WHERE task_id = $1"
_DEFER = "UPDATE roadmap_tasks SET deferrals = deferrals + 1 WHERE task_id = $1"
_EXISTS = "SELECT task_id FROM roadmap_tasks WHERE task_id = $1"
_LOCK_OWNER = "SELECT pg_advisory_xact_lock(hashtextextended('taskrelay.open_items:' || $1, 0))"
_OPEN_ITEMS = (
    "SELECT coalesce(sum(items_total - items_completed - items_failed), 0) FROM roadmap_tasks "
    "WHERE owner_id = $1 AND status IN ('pending', 'processing')"
)
_ADD = (
    "INSERT INTO roadmap_tasks (task_id, roadmap_id, owner_id, status, current_step, seq, "
    "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
)
_VIEW = (
    "SELECT t.task_id, t.roadmap_id, t.owner_id, t.status, t.current_step, t.error_message, "
    "t.completed_at, t.created_at, t.updated_at, t.seq, t.last_message, t.waiting_since, "
    "coalesce((SELECT jsonb_agg(jsonb_build_array(content_type, status, n)) "
    "FROM (SELECT content_type, status, count(*) AS n FROM content_items "
    "WHERE task_id = t.task_id GROUP BY content_type, status) AS c), '[]') AS item_counts "
    "FROM roadmap_tasks AS t WHERE t.task_id = $1"
)

_OVERVIEW = (
    "SELECT t.task_id, t.owner_id, t.status, "
    "extract(epoch FROM now() - t.created_at)::float8 AS age_seconds, t.items_total, "
    "t.items_completed, t.items_failed, coalesce(l.recoveries, 0) AS recoveries, "
    "t.error_message FROM roadmap_tasks AS t LEFT JOIN task_leases AS l USING (task_id) "
    "WHERE t.status = ANY($1::text[]) AND t.created_at <= now() - make_interval(secs => $2) "
    "AND ($3::text IS NULL OR t.owner_id = $3) ORDER BY t.created_at, t.task_id LIMIT $4"
)
"""An operator's listing, oldest first; rare enough that walking the tasks is fine."""


def task_state(row: Any) -> TaskState:
    """The domain state of a `roadmap_tasks` row (or of a statement returning `STATE`)."""
    return TaskState(
        task_id=row["task_id"],
        roadmap_id=row["roadmap_id"],
        owner_id=row["owner_id"],
        status=Status(row["status"]),
        current_step=row["current_step"],
        error_message=row["error_message"],
        completed_at=row["completed_at"],
        seq=row["seq"],
    )


class TaskRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        """An asyncpg connection inside the unit of work's transaction."""

    async def add(self, state: TaskState, now: datetime) -> None:
        await self._conn.execute(
            _ADD,
            state.task_id,
            state.roadmap_id,
            state.owner_id,
            state.status.value,
            state.current_step,
            state.seq,
            now,
        )

    async def exists(self, task_id: UUID) -> bool:
        return await self._conn.fetchval(_EXISTS, task_id) is not None

    async def owner(self, task_id: UUID) -> str | None:
        """Who the task belongs to (None if unknown), read without taking any lock."""
        owner: str | None = await self._conn.fetchval(_OWNER, task_id)
        return owner

    async def defer(self, task_id: UUID) -> None:
        """Count one turn the task gave away (`shared.adapters.postgres.turns`); the caller
        writes its new dispatch."""
        await self._conn.execute(_DEFER, task_id)

    async def open_items(self, owner_id: str) -> int:
        """Items still pending in the owner's unfinished tasks, read under a per-owner advisory
        lock held to the transaction's end (two statements: the count's snapshot must be taken
        after the lock is granted)."""
        await self._conn.execute(_LOCK_OWNER, owner_id)
        return int(await self._conn.fetchval(_OPEN_ITEMS, owner_id))

    async def lock(self, task_id: UUID) -> TaskState | None:
        """Read the task and lock its row until the transaction ends."""
        row = await self._conn.fetchrow(_LOCK, task_id)
        return task_state(row) if row else None

    async def lock_owned(self, task_id: UUID, owner_id: str) -> TaskState | None:
        """Like `lock`, for `owner_id`'s task only: None, with no lock taken or waited for, if
        the task is unknown or another user's."""
        row = await self._conn.fetchrow(_LOCK_OWNED, task_id, owner_id)
        return task_state(row) if row else None

    async def lock_unless_busy(self, task_id: UUID) -> TaskState | None:
        """Like `lock`, but None at once if another transaction holds the row."""
        row = await self._conn.fetchrow(_LOCK_UNLESS_BUSY, task_id)
        return task_state(row) if row else None

    async def overview(self, wanted: TaskFilter) -> list[TaskSummary]:
        """The tasks `wanted` selects, oldest first, as an operator's listing shows them."""
        rows = await self._conn.fetch(
            _OVERVIEW,
            [s.value for s in wanted.statuses],
            wanted.older_than_seconds,
            wanted.owner_id,
            wanted.limit,
        )
        return [TaskSummary(**dict(row)) for row in rows]

    async def view(self, task_id: UUID) -> tuple[str, TaskView] | None:
        """(its owner, the task's view with its item counts), in one round trip; None if
        unknown."""
        row = await self._conn.fetchrow(_VIEW, task_id)
        if row is None:
            return None
        counts = ItemCounts.from_rows([(t, s, int(n)) for t, s, n in row["item_counts"]])
        view = TaskView(
            task_id=row["task_id"],
            roadmap_id=row["roadmap_id"],
            status=Status(row["status"]),
            current_step=row["current_step"],
            error_message=row["error_message"],
            completed_at=row["completed_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            seq=row["seq"],
            last_message=row["last_message"],
            items=counts,
            waiting_since=row["waiting_since"],
        )
        return row["owner_id"], view
