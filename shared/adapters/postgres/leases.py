"""The `task_leases` repository: which RQ job generates a task's items, and until when.

A lease's `generation` grows each time a job takes it: a job writes only while the lease still
carries the generation it took (fencing), so a job whose lease was taken back can write nothing.
Every time is the database's clock (`now()`), so workers on machines with skewed clocks still
agree on who is alive. The repository maps rows; `shared.service.generation` and
`shared.service.recovery` decide what to do with them. One statement elsewhere writes this
table: storing an item's result renews the job's lease in the same statement as its fencing
check (`ItemRepository.store_result`, `items.py`).
"""

from __future__ import annotations

from uuid import UUID

from shared.adapters.postgres.sql import Connection, affected
from shared.domain.records import Lease

_ACQUIRE = (
    "INSERT INTO task_leases (task_id, holder, expires_at, generation, updated_at) "
    "VALUES ($1, $2, now() + make_interval(secs => $3), 1, now()) "
    "ON CONFLICT (task_id) DO UPDATE SET holder = EXCLUDED.holder, "
    "expires_at = EXCLUDED.expires_at, generation = task_leases.generation + 1, "
    "updated_at = now() "
    "WHERE task_leases.holder IS NULL OR task_leases.holder = EXCLUDED.holder "
    "OR task_leases.expires_at < now() RETURNING generation"
)
_RENEW = (
    "UPDATE task_leases SET expires_at = now() + make_interval(secs => $4), updated_at = now(), "
    "recoveries = CASE WHEN $5::boolean THEN 0 ELSE recoveries END "
    "WHERE task_id = $1 AND holder = $2 AND generation = $3"
)
_RELEASE = (
    "UPDATE task_leases SET holder = NULL, expires_at = NULL, updated_at = now(), "
    "recoveries = CASE WHEN $4::boolean THEN recoveries ELSE 0 END "
    "WHERE task_id = $1 AND holder = $2 AND generation = $3"
)
_FORGET = (
    "UPDATE task_leases SET holder = NULL, expires_at = NULL, recoveries = 0, "
    "updated_at = now() WHERE task_id = $1"
)
_HELD_BY = "SELECT generation FROM task_leases WHERE task_id = $1 AND holder = $2 FOR UPDATE"
_TAKE_BACK = (
    "INSERT INTO task_leases (task_id, holder, expires_at, generation, recoveries, updated_at) "
    "VALUES ($1, NULL, NULL, 1, 1, now()) "
    "ON CONFLICT (task_id) DO UPDATE SET holder = NULL, expires_at = NULL, "
    "generation = task_leases.generation + 1, recoveries = task_leases.recoveries + 1, "
    "updated_at = now() "
    "WHERE task_leases.generation = $2 "
    "AND (task_leases.holder IS NULL OR task_leases.expires_at < now()) "
    "RETURNING recoveries"
)


class LeaseRepository:
    """Task leases: one live job per task, proved by renewing before `expires_at` (DB clock)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def acquire(self, task_id: UUID, holder: str, seconds: float) -> Lease | None:
        """Take the lease if it is free, lapsed, or already ours; None if a live job holds it."""
        generation = await self._conn.fetchval(_ACQUIRE, task_id, holder, float(seconds))
        return None if generation is None else Lease(task_id, holder, int(generation))

    async def renew(self, lease: Lease, seconds: float, *, progress: bool = False) -> bool:
        """Extend the lease if it is still this one (even lapsed, if nobody took it back).

        False means it was taken back: the job must write nothing more for the task. `progress`
        (an item done) also clears the count of recoveries without progress.
        """
        status = await self._conn.execute(
            _RENEW, lease.task_id, lease.holder, lease.generation, float(seconds), progress
        )
        return affected(status) > 0

    async def release(self, lease: Lease, *, keep_recoveries: bool) -> bool:
        """Free the lease if it is still this one; True if it was."""
        status = await self._conn.execute(
            _RELEASE, lease.task_id, lease.holder, lease.generation, keep_recoveries
        )
        return affected(status) > 0

    async def held_by(self, task_id: UUID, holder: str) -> Lease | None:
        """The lease if `holder` (an RQ job id) still has it, lapsed or not."""
        generation = await self._conn.fetchval(_HELD_BY, task_id, holder)
        return None if generation is None else Lease(task_id, holder, int(generation))

    async def forget(self, task_id: UUID) -> None:
        """No holder and no recoveries counted: the task left `pending`/`processing`."""
        await self._conn.execute(_FORGET, task_id)

    async def take_back(self, task_id: UUID, generation: int) -> int | None:
        """Take a free or lapsed lease from whatever job had it (fencing that job out) and count
        one recovery; the recoveries so far, or None if the lease changed since it was read."""
        recoveries = await self._conn.fetchval(_TAKE_BACK, task_id, generation)
        return None if recoveries is None else int(recoveries)
