"""The `content_items` repository: a task's items, for the API and for the worker's job.

One repository for the table: the API adds items, resets the unfinished ones for a retry,
counts and pages them; the job stores each result and takes the next pending item in
generation order. Storing touches only a still-pending item, and only while the job's lease
still carries its generation (fencing), so a duplicate or fenced-out job never stores.

Every statement that changes an item's status also keeps the task's counters
(`roadmap_tasks.items_total`, `items_completed`, `items_failed`) in the same statement, so
`counts` and an item's notification read exact counts without scanning the task's items; and
storing a result renews the job's lease (`task_leases`) in the statement that checks it. These
statements write `roadmap_tasks` and `task_leases` from here, on purpose, and the docstrings of
`tasks.py` and `leases.py` say so.
Plain prepared SQL (`shared.adapters.postgres.sql`) on the unit of work's asyncpg connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.adapters.postgres.sql import Connection, jsonb
from shared.adapters.postgres.tasks import STATE, task_state
from shared.domain import (
    ItemCounts,
    ItemDetail,
    ItemKey,
    ItemPage,
    ItemRow,
    ItemStatus,
)
from shared.domain.records import Lease, PendingItem, Stored

_ADD = (
    "WITH added AS (INSERT INTO content_items (task_id, concept_id, content_type, position, "
    "concept_title, updated_at) SELECT $1, c, t, p, title, $6 "
    "FROM unnest($2::text[], $3::text[], $4::int[], $5::text[]) AS u(c, t, p, title) RETURNING 1) "
    "UPDATE roadmap_tasks SET items_total = items_total + (SELECT count(*) FROM added) "
    "WHERE task_id = $1"
)
_RESET = (
    "WITH reset AS (UPDATE content_items SET status = 'pending', updated_at = $2 "
    "WHERE task_id = $1 AND status != 'completed' "
    "RETURNING concept_id, content_type, position), "
    "counted AS (UPDATE roadmap_tasks SET items_failed = 0 WHERE task_id = $1) "
    "SELECT * FROM reset"
)
"""Every item not completed becomes pending: none is failed any more."""
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
_COUNTS = "SELECT items_total, items_completed, items_failed FROM roadmap_tasks WHERE task_id = $1"
_PENDING = "FROM content_items WHERE task_id = $1 AND status = 'pending' ORDER BY position"
_PENDING_ITEMS = f"SELECT concept_id, content_type, concept_title, attempts {_PENDING}"
_NEXT_PENDING = f"{_PENDING_ITEMS} LIMIT 1"
_PENDING_KEYS = f"SELECT concept_id, content_type {_PENDING}"
_ITEM = "task_id = $1 AND concept_id = $2 AND content_type = $3"
_ONE = (
    "SELECT t.owner_id, i.concept_id, i.concept_title, i.content_type, i.status, i.attempts, "
    "i.last_error, i.updated_at, i.position, i.content, i.usage FROM content_items AS i "
    "JOIN roadmap_tasks AS t ON t.task_id = i.task_id "
    "WHERE i.task_id = $1 AND i.concept_id = $2 AND i.content_type = $3"
)
"""One item with its content and usage, and its task's owner (for the ownership check)."""
_STORE = (
    # Locks in the order every writer of a task takes them: the task row first (each later
    # step waits on the one before it), then the lease, then the item.
    f"WITH task AS (SELECT {STATE}, xmin FROM roadmap_tasks WHERE task_id = $1 FOR UPDATE), "
    # The fencing check: the lease must still carry the job's generation. Storing its item (a
    # pending one) is progress, which clears the count of recoveries without progress.
    "lease AS (UPDATE task_leases SET expires_at = now() + make_interval(secs => $6), "
    "updated_at = now(), recoveries = CASE WHEN EXISTS (SELECT FROM content_items "
    f"WHERE {_ITEM} AND status = 'pending') THEN 0 ELSE recoveries END "
    "WHERE task_id = $1 AND holder = $4 AND generation = $5 AND EXISTS (SELECT FROM task) "
    "RETURNING 1), "
    "stored AS (UPDATE content_items SET status = $7, attempts = attempts + 1, "
    "last_error = $8, content = $9, updated_at = $10, usage = $11 "
    f"WHERE {_ITEM} AND status = 'pending' AND EXISTS (SELECT FROM lease) RETURNING 1), "
    "counted AS (UPDATE roadmap_tasks SET "
    "items_completed = items_completed + CASE WHEN $7 = 'completed' THEN 1 ELSE 0 END, "
    "items_failed = items_failed + CASE WHEN $7 = 'failed' THEN 1 ELSE 0 END "
    "WHERE task_id = $1 AND EXISTS (SELECT FROM stored) "
    "RETURNING items_total, items_completed, items_failed) "
    "SELECT task.*, EXISTS (SELECT FROM lease) AS fenced_in, "
    "task.xmin = (SELECT xmin FROM roadmap_tasks WHERE task_id = $1) AS current, c.*, n.* "
    "FROM task LEFT JOIN counted AS c ON true LEFT JOIN LATERAL (SELECT concept_id, "
    "content_type, concept_title, attempts FROM content_items WHERE task_id = $1 "
    "AND status = 'pending' AND (concept_id, content_type) <> ($2, $3) "
    "ORDER BY position LIMIT 1) AS n ON true"
)
"""One round trip for a job's item: lock, fence, store, count, and the next pending item.

The statement reads from the snapshot it started with, which does not see its own store (so
the next pending item leaves the stored one out), nor a change committed while it waited for
the task row lock. Every change of a task's items also updates its row (the counters, `seq`),
so the locked row's `xmin` differs from the snapshot's exactly when such a change came in
between (`current` is false); then the next pending item is read again, by a statement that
starts after the lock was taken."""


class ItemRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        """An asyncpg connection inside the unit of work's transaction."""

    async def add_many(
        self, task_id: UUID, items: Sequence[tuple[ItemKey, str]], now: datetime
    ) -> None:
        """Insert (key, concept title) pairs in generation order, in one statement."""
        await self._conn.execute(
            _ADD,
            task_id,
            [key.concept_id for key, _ in items],
            [key.content_type for key, _ in items],
            list(range(len(items))),
            [title for _, title in items],
            now,
        )

    async def reset_unfinished(self, task_id: UUID, now: datetime) -> list[ItemKey]:
        """Set every item that is not completed back to pending; the items, in order."""
        rows = sorted(await self._conn.fetch(_RESET, task_id, now), key=lambda r: r["position"])
        return [ItemKey(r["concept_id"], r["content_type"]) for r in rows]

    async def counts(self, task_id: UUID) -> ItemCounts:
        """The task's counts from its counters (no `by_type`: the task view reads those)."""
        row = await self._conn.fetchrow(_COUNTS, task_id)
        return ItemCounts() if row is None else _counts(row)

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
        items = [_item_row(r) for r in rows if r["position"] is not None]
        return ItemPage(owner_id=rows[0]["owner_id"], seq=rows[0]["seq"], items=items)

    async def one(self, task_id: UUID, key: ItemKey) -> ItemDetail | None:
        """The item `key` of the task with its content and usage; None if either is unknown."""
        r = await self._conn.fetchrow(_ONE, task_id, key.concept_id, key.content_type)
        if r is None:
            return None
        return ItemDetail(r["owner_id"], _item_row(r), r["content"], r["usage"])

    async def next_pending(self, task_id: UUID) -> PendingItem | None:
        """The first pending item in generation order, or None when nothing is pending."""
        row = await self._conn.fetchrow(_NEXT_PENDING, task_id)
        return None if row is None else _pending(row)

    async def pending(self, task_id: UUID) -> list[PendingItem]:
        """Every pending item, in generation order."""
        rows = await self._conn.fetch(_PENDING_ITEMS, task_id)
        return [_pending(row) for row in rows]

    async def pending_keys(self, task_id: UUID) -> list[ItemKey]:
        rows = await self._conn.fetch(_PENDING_KEYS, task_id)
        return [ItemKey(r["concept_id"], r["content_type"]) for r in rows]

    async def store_result(
        self,
        lease: Lease,
        key: ItemKey,
        *,
        content: Any,
        error: str | None,
        now: datetime,
        lease_seconds: float,
        usage: dict[str, int] | None = None,
    ) -> Stored | None:
        """Lock the lease's task, then store the result of its pending item `key` and count the
        attempt, only while the lease still carries its generation (renewing it for
        `lease_seconds`); the counts after it and the next pending item. None if the task is
        unknown."""
        done = ItemStatus.FAILED if error is not None else ItemStatus.COMPLETED
        row = await self._conn.fetchrow(
            _STORE,
            lease.task_id,
            key.concept_id,
            key.content_type,
            lease.holder,
            lease.generation,
            float(lease_seconds),
            done.value,
            error,
            jsonb(content if error is None else None),
            now,
            jsonb(usage if error is None else None),
        )
        if row is None:
            return None
        state = task_state(row)
        if not row["fenced_in"]:
            return Stored(state, fenced_out=True, counts=None, following=None)
        counts = None if row["items_total"] is None else _counts(row)
        if not row["current"]:
            following = await self.next_pending(lease.task_id)
        else:
            following = None if row["concept_id"] is None else _pending(row)
        return Stored(state, fenced_out=False, counts=counts, following=following)


def _item_row(r: Any) -> ItemRow:
    return ItemRow(
        position=r["position"],
        concept_id=r["concept_id"],
        title=r["concept_title"],
        content_type=r["content_type"],
        status=r["status"],
        attempts=r["attempts"],
        error=r["last_error"],
        updated_at=r["updated_at"],
    )


def _pending(row: Any) -> PendingItem:
    key = ItemKey(row["concept_id"], row["content_type"])
    return PendingItem(key, row["concept_title"], row["attempts"])


def _counts(row: Any) -> ItemCounts:
    total, completed, failed = row["items_total"], row["items_completed"], row["items_failed"]
    return ItemCounts(total, completed, failed, total - completed - failed)
