"""The `content_items` repository: a task's items, for the API and for the worker's job.

One repository for the table: the API adds items, resets the unfinished ones for a retry,
counts and pages them; the job takes the next pending item in generation order and stores its
result. Storing touches only a still-pending item, so a duplicate job never stores twice.
Plain prepared SQL (`shared.db.sql`) on the unit of work's asyncpg connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.db.sql import Connection, affected, jsonb
from shared.domain import ItemCounts, ItemKey, ItemPage, ItemRow, ItemStatus


@dataclass(frozen=True, slots=True)
class PendingItem:
    """An item still to generate, with what the content generator is told about it."""

    key: ItemKey
    concept_title: str
    attempts: int
    """Tries counted so far; the next one is attempt `attempts + 1`."""


_ADD = (
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
_PENDING = "FROM content_items WHERE task_id = $1 AND status = 'pending' ORDER BY position"
_NEXT_PENDING = f"SELECT concept_id, content_type, concept_title, attempts {_PENDING} LIMIT 1"
_PENDING_KEYS = f"SELECT concept_id, content_type {_PENDING}"
_STORE = (
    "UPDATE content_items SET status = $4, attempts = attempts + 1, last_error = $5, "
    "content = $6, updated_at = $7 "
    "WHERE task_id = $1 AND status = 'pending' AND concept_id = $2 AND content_type = $3"
)


class ItemRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        """An asyncpg connection inside the unit of work's transaction."""

    async def add_many(
        self, task_id: UUID, items: Sequence[tuple[ItemKey, str]], now: datetime
    ) -> None:
        """Insert (key, concept title) pairs in generation order."""
        await self._conn.executemany(
            _ADD,
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

    async def next_pending(self, task_id: UUID) -> PendingItem | None:
        """The first pending item in generation order, or None when nothing is pending."""
        row = await self._conn.fetchrow(_NEXT_PENDING, task_id)
        if row is None:
            return None
        key = ItemKey(row["concept_id"], row["content_type"])
        return PendingItem(key, row["concept_title"], row["attempts"])

    async def pending_keys(self, task_id: UUID) -> list[ItemKey]:
        rows = await self._conn.fetch(_PENDING_KEYS, task_id)
        return [ItemKey(r["concept_id"], r["content_type"]) for r in rows]

    async def store_result(
        self, task_id: UUID, key: ItemKey, *, content: Any, error: str | None, now: datetime
    ) -> bool:
        """Store a pending item's result and count the attempt; False if it was not pending."""
        done = ItemStatus.FAILED if error is not None else ItemStatus.COMPLETED
        status = await self._conn.execute(
            _STORE,
            task_id,
            key.concept_id,
            key.content_type,
            done.value,
            error,
            jsonb(content if error is None else None),
            now,
        )
        return affected(status) > 0
