"""Repositories over one connection: tasks and their content items.

They map rows to domain values and back; they never decide anything. A status is written only
through `TaskRepository.save`, which the state machine's service calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.tables import content_items, roadmap_tasks
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
