"""The worker's repositories: content items in generation order, task leases, the job inbox.

Like `shared.db.repositories`, they map rows and never decide: `shared.service.generation` and
`shared.service.recovery` decide what a job and the reconciler do with them. Lease times use the
database clock, so workers on machines with skewed clocks still agree on who is alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.tables import content_items, job_inbox, roadmap_tasks
from shared.domain import ItemKey, ItemStatus


@dataclass(frozen=True, slots=True)
class PendingItem:
    """An item still to generate, with what the content generator is told about it."""

    key: ItemKey
    concept_title: str
    attempts: int
    """Tries counted so far; the next one is attempt `attempts + 1`."""


_PENDING = (content_items.c.task_id == bindparam("b_task_id")) & (
    content_items.c.status == ItemStatus.PENDING.value
)
_NEXT_PENDING = (
    select(
        content_items.c.concept_id,
        content_items.c.content_type,
        content_items.c.concept_title,
        content_items.c.attempts,
    )
    .where(_PENDING)
    .order_by(content_items.c.position)
    .limit(1)
)
_PENDING_KEYS = (
    select(content_items.c.concept_id, content_items.c.content_type)
    .where(_PENDING)
    .order_by(content_items.c.position)
)
_STORE = (
    update(content_items)
    .where(_PENDING)
    .where(content_items.c.concept_id == bindparam("b_concept_id"))
    .where(content_items.c.content_type == bindparam("b_content_type"))
    .values(
        status=bindparam("status"),
        attempts=content_items.c.attempts + 1,
        last_error=bindparam("last_error"),
        content=bindparam("content", type_=JSONB(none_as_null=True)),
        updated_at=bindparam("updated_at"),
    )
)
"""Built once: the worker runs these for every item."""


class WorkItemRepository:
    """The worker's view of content items: the next one to generate, and storing a result."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def next_pending(self, task_id: UUID) -> PendingItem | None:
        row = (await self._conn.execute(_NEXT_PENDING, {"b_task_id": task_id})).first()
        if row is None:
            return None
        return PendingItem(
            ItemKey(row.concept_id, row.content_type), row.concept_title, row.attempts
        )

    async def pending_keys(self, task_id: UUID) -> list[ItemKey]:
        rows = await self._conn.execute(_PENDING_KEYS, {"b_task_id": task_id})
        return [ItemKey(r.concept_id, r.content_type) for r in rows]

    async def store_result(
        self, task_id: UUID, key: ItemKey, *, content: Any, error: str | None, now: datetime
    ) -> bool:
        """Store a pending item's result and count the attempt; False if it was not pending."""
        done = ItemStatus.FAILED if error is not None else ItemStatus.COMPLETED
        result = await self._conn.execute(
            _STORE,
            {
                "b_task_id": task_id,
                "b_concept_id": key.concept_id,
                "b_content_type": key.content_type,
                "status": done.value,
                "last_error": error,
                "content": content if error is None else None,
                "updated_at": now,
            },
        )
        return bool(getattr(result, "rowcount", 0))


# Lease statements, built once; every time is the database's clock (`now()`). A lease's
# `generation` grows each time a job takes it: a job writes only while the lease still carries
# the generation it took (fencing), so a job whose lease was taken back can write nothing.
_ACQUIRE = text(
    "INSERT INTO task_leases (task_id, holder, expires_at, generation, updated_at) "
    "VALUES (:t, :h, now() + make_interval(secs => :s), 1, now()) "
    "ON CONFLICT (task_id) DO UPDATE SET holder = EXCLUDED.holder, "
    "expires_at = EXCLUDED.expires_at, generation = task_leases.generation + 1, "
    "updated_at = now() "
    "WHERE task_leases.holder IS NULL OR task_leases.holder = EXCLUDED.holder "
    "OR task_leases.expires_at < now() RETURNING generation"
)

_RENEW = text(
    "UPDATE task_leases SET expires_at = now() + make_interval(secs => :s), updated_at = now(), "
    "recoveries = CASE WHEN :progress THEN 0 ELSE recoveries END "
    "WHERE task_id = :t AND holder = :h AND generation = :g"
)

_RELEASE = text(
    "UPDATE task_leases SET holder = NULL, expires_at = NULL, updated_at = now(), "
    "recoveries = CASE WHEN :keep THEN recoveries ELSE 0 END "
    "WHERE task_id = :t AND holder = :h AND generation = :g"
)

_FORGET = text(
    "UPDATE task_leases SET holder = NULL, expires_at = NULL, recoveries = 0, "
    "updated_at = now() WHERE task_id = :t"
)

_HELD_BY = text("SELECT generation FROM task_leases WHERE task_id = :t AND holder = :h FOR UPDATE")

_TAKE_BACK = text(
    "INSERT INTO task_leases (task_id, holder, expires_at, generation, recoveries, updated_at) "
    "VALUES (:t, NULL, NULL, 1, 1, now()) "
    "ON CONFLICT (task_id) DO UPDATE SET holder = NULL, expires_at = NULL, "
    "generation = task_leases.generation + 1, recoveries = task_leases.recoveries + 1, "
    "updated_at = now() "
    "WHERE task_leases.generation = :g "
    "AND (task_leases.holder IS NULL OR task_leases.expires_at < now()) "
    "RETURNING recoveries"
)


@dataclass(frozen=True, slots=True)
class Lease:
    """A job's hold on its task: who, and which taking of the lease (the fencing token)."""

    task_id: UUID
    holder: str
    generation: int


class LeaseRepository:
    """Task leases: one live job per task, proved by renewing before `expires_at` (DB clock)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def acquire(self, task_id: UUID, holder: str, seconds: float) -> Lease | None:
        """Take the lease if it is free, lapsed, or already ours; None if a live job holds it."""
        result = await self._conn.execute(_ACQUIRE, {"t": task_id, "h": holder, "s": seconds})
        generation = result.scalar()
        return None if generation is None else Lease(task_id, holder, int(generation))

    async def renew(self, lease: Lease, seconds: float, *, progress: bool = False) -> bool:
        """Extend the lease if it is still this one (even lapsed, if nobody took it back).

        False means it was taken back: the job must write nothing more for the task. `progress`
        (an item done) also clears the count of recoveries without progress.
        """
        result = await self._conn.execute(
            _RENEW,
            {
                "t": lease.task_id,
                "h": lease.holder,
                "g": lease.generation,
                "s": seconds,
                "progress": progress,
            },
        )
        return bool(getattr(result, "rowcount", 0))

    async def release(self, lease: Lease, *, keep_recoveries: bool) -> bool:
        """Free the lease if it is still this one; True if it was."""
        result = await self._conn.execute(
            _RELEASE,
            {"t": lease.task_id, "h": lease.holder, "g": lease.generation, "keep": keep_recoveries},
        )
        return bool(getattr(result, "rowcount", 0))

    async def held_by(self, task_id: UUID, holder: str) -> Lease | None:
        """The lease if `holder` (an RQ job id) still has it, lapsed or not."""
        result = await self._conn.execute(_HELD_BY, {"t": task_id, "h": holder})
        generation = result.scalar()
        return None if generation is None else Lease(task_id, holder, int(generation))

    async def forget(self, task_id: UUID) -> None:
        """No holder and no recoveries counted: the task left `pending`/`processing`."""
        await self._conn.execute(_FORGET, {"t": task_id})

    async def take_back(self, task_id: UUID, generation: int) -> int | None:
        """Take a free or lapsed lease from whatever job had it (fencing that job out) and count
        one recovery; the recoveries so far, or None if the lease changed since it was read."""
        result = await self._conn.execute(_TAKE_BACK, {"t": task_id, "g": generation})
        recoveries = result.scalar()
        return None if recoveries is None else int(recoveries)


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
