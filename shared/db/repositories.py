"""Repositories of the hot path: tasks and their content items, over the asyncpg connection.

They map rows to domain values and back; they never decide anything. A status is written only
through `TaskRepository.save`, which the state machine's service calls. Every API request and
every item result runs these statements, so they are plain prepared SQL on the unit of work's
asyncpg connection (asyncpg caches each prepared statement per connection); the SQL mirrors
the tables of `shared/db/tables.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.domain import ItemCounts, ItemKey, ItemPage, ItemRow, Status, TaskState

_STATE = "task_id, roadmap_id, owner_id, status, current_step, error_message, completed_at, seq"
_LOCK = f"SELECT {_STATE} FROM roadmap_tasks WHERE task_id = $1 FOR UPDATE"
_LOCK_UNLESS_BUSY = f"{_LOCK} SKIP LOCKED"
_OWNER = "SELECT owner_id FROM roadmap_tasks WHERE task_id = $1"
_ADD = (
    "INSERT INTO roadmap_tasks (task_id, roadmap_id, owner_id, status, current_step, seq, "
    "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
)
_SAVE = (
    "UPDATE roadmap_tasks SET status = $2, current_step = $3, error_message = $4, "
    "completed_at = $5, seq = $6, updated_at = $7, last_message = $8 WHERE task_id = $1"
)
_VIEW = (
    "SELECT t.*, coalesce((SELECT jsonb_agg(jsonb_build_array(content_type, status, n)) "
    "FROM (SELECT content_type, status, count(*) AS n FROM content_items "
    "WHERE task_id = t.task_id GROUP BY content_type, status) AS c), '[]') AS item_counts "
    "FROM roadmap_tasks AS t WHERE t.task_id = $1"
)
_ADD_ITEM = (
    "INSERT INTO content_items (task_id, concept_id, content_type, position, concept_title, "
    "updated_at) VALUES ($1, $2, $3, $4, $5, $6)"
)
_RESET = (
    "UPDATE content_items SET status = 'pending', updated_at = $2 "
    "WHERE task_id = $1 AND status != 'completed' "
    "RETURNING concept_id, content_type, position"
)
_PAGE = (
    "SELECT t.owner_id, t.seq, i.* FROM roadmap_tasks AS t LEFT JOIN LATERAL "
    "(SELECT concept_id, concept_title, content_type, status, attempts, last_error, updated_at, "
    "position FROM content_items WHERE task_id = t.task_id AND position > $2 {status}"
    "ORDER BY position LIMIT $3) AS i ON true WHERE t.task_id = $1 ORDER BY i.position"
)
_PAGE_ALL = _PAGE.format(status="")
_PAGE_BY_STATUS = _PAGE.format(status="AND status = $4 ")
"""One statement each (so each keeps a prepared plan on its index): the owner and `seq` of the
task and one page of its items, read from the same snapshot."""
_COUNTS = (
    "SELECT content_type, status, count(*) FROM content_items WHERE task_id = $1 "
    "GROUP BY content_type, status"
)


def _state(row: Any) -> TaskState:
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
    def __init__(self, conn: Any) -> None:
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

    async def owner(self, task_id: UUID) -> str | None:
        """Who the task belongs to (None if unknown), read without taking any lock."""
        owner: str | None = await self._conn.fetchval(_OWNER, task_id)
        return owner

    async def lock(self, task_id: UUID) -> TaskState | None:
        """Read the task and lock its row until the transaction ends."""
        row = await self._conn.fetchrow(_LOCK, task_id)
        return _state(row) if row else None

    async def lock_unless_busy(self, task_id: UUID) -> TaskState | None:
        """Like `lock`, but None at once if another transaction holds the row."""
        row = await self._conn.fetchrow(_LOCK_UNLESS_BUSY, task_id)
        return _state(row) if row else None

    async def save(self, state: TaskState, now: datetime, message: str) -> None:
        """Write the state and `message`, the notification this change emits (`last_message`)."""
        await self._conn.execute(
            _SAVE,
            state.task_id,
            state.status.value,
            state.current_step,
            state.error_message,
            state.completed_at,
            state.seq,
            now,
            message,
        )

    async def view_row(self, task_id: UUID) -> tuple[dict[str, Any], ItemCounts] | None:
        """Every column of the task and its item counts, in one round trip; None if unknown."""
        row = await self._conn.fetchrow(_VIEW, task_id)
        if row is None:
            return None
        counts = ItemCounts.from_rows([(t, s, int(n)) for t, s, n in row["item_counts"]])
        return dict(row), counts


class ItemRepository:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def add_many(
        self, task_id: UUID, items: Sequence[tuple[ItemKey, str]], now: datetime
    ) -> None:
        """Insert (key, concept title) pairs in generation order."""
        await self._conn.executemany(
            _ADD_ITEM,
            [
                (task_id, key.concept_id, key.content_type, position, title, now)
                for position, (key, title) in enumerate(items)
            ],
        )

    async def reset_unfinished(self, task_id: UUID, now: datetime) -> list[ItemKey]:
        """Set every item that is not completed back to pending; the items, in order."""
        rows = sorted(await self._conn.fetch(_RESET, task_id, now), key=lambda r: r["position"])
        return [ItemKey(r["concept_id"], r["content_type"]) for r in rows]

    async def counts(self, task_id: UUID) -> ItemCounts:
        rows = await self._conn.fetch(_COUNTS, task_id)
        return ItemCounts.from_rows([(r[0], r[1], int(r[2])) for r in rows])

    async def page(
        self, task_id: UUID, after: int, limit: int, status: str | None
    ) -> ItemPage | None:
        """Up to `limit` items after position `after`, in order; None if the task is unknown."""
        if status is None:
            rows = await self._conn.fetch(_PAGE_ALL, task_id, after, limit)
        else:
            rows = await self._conn.fetch(_PAGE_BY_STATUS, task_id, after, limit, status)
        if not rows:
            return None
        items = [
            ItemRow(
                position=r["position"],
                concept_id=r["concept_id"],
                title=r["concept_title"],
                content_type=r["content_type"],
                status=r["status"],
                attempts=r["attempts"],
                error=r["last_error"],
                updated_at=r["updated_at"],
            )
            for r in rows
            if r["position"] is not None
        ]
        return ItemPage(owner_id=rows[0]["owner_id"], seq=rows[0]["seq"], items=items)
