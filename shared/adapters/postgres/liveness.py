"""What the database knows about the work of each task that must have some.

For every `pending` or `processing` task without a live lease, one row says what became of its
latest job dispatch: still in the outbox, parked, published but not taken by a worker, or taken
(its RQ job id), and the state of its lease. `shared.service.recovery` judges from these facts,
and what RQ says of the job, whether the task still has live work.

It is the reconciler's read model, not a table's repository: one query over `roadmap_tasks`,
`task_leases`, `outbox` and `job_inbox`, which no single table's repository should own. Plain
prepared SQL (`shared.adapters.postgres.sql`) on the unit of work's asyncpg connection.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from shared.adapters.postgres.sql import Connection
from shared.domain import Status
from shared.domain.records import WorkFacts

_FACTS = (
    "SELECT t.task_id, t.status, t.updated_at, l.holder, coalesce(l.generation, 0) AS generation, "
    "extract(epoch FROM now() - l.expires_at) AS lapsed_for, "
    "d.id AS dispatch_id, d.published_at IS NULL AND d.parked_at IS NULL AS dispatch_waiting, "
    "d.parked_at IS NOT NULL AS dispatch_parked, "
    "extract(epoch FROM now() - d.published_at) AS published_for, "
    "i.message_id = d.message_id AS dispatch_taken, i.job_id "
    "FROM roadmap_tasks t "
    "LEFT JOIN task_leases l ON l.task_id = t.task_id "
    "LEFT JOIN LATERAL (SELECT o.id, o.message_id, o.published_at, o.parked_at FROM outbox o "
    "  WHERE o.task_id = t.task_id AND o.kind = 'job' ORDER BY o.id DESC LIMIT 1) d ON true "
    "LEFT JOIN LATERAL (SELECT j.message_id, j.job_id FROM job_inbox j "
    "  WHERE j.task_id = t.task_id ORDER BY j.received_at DESC LIMIT 1) i ON true "
    "WHERE t.status IN ('pending', 'processing') "
    "AND t.updated_at < now() - make_interval(secs => $1) "
    "AND (l.holder IS NULL OR l.expires_at < now()) "
    "AND (t.updated_at, t.task_id) > ($2::timestamptz, $3::uuid) "
    "ORDER BY t.updated_at, t.task_id LIMIT $4"
)

_BEGINNING = (datetime.fromisoformat("1970-01-01T00:00:00+00:00"), UUID(int=0))


class LivenessRepository:
    """Pages through the tasks that must have live work but hold no live lease."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def without_live_lease(
        self, quiet_seconds: float, limit: int, after: tuple[datetime, UUID] | None = None
    ) -> list[WorkFacts]:
        """Such tasks unchanged for `quiet_seconds`, oldest change first, after `after`."""
        after_time, after_id = after or _BEGINNING
        rows = await self._conn.fetch(_FACTS, float(quiet_seconds), after_time, after_id, limit)
        return [
            WorkFacts(
                task_id=r["task_id"],
                status=Status(r["status"]),
                holder=r["holder"],
                generation=int(r["generation"]),
                lapsed_for=_seconds(r["lapsed_for"]),
                dispatch_id=r["dispatch_id"],
                dispatch_waiting=bool(r["dispatch_waiting"]),
                dispatch_parked=bool(r["dispatch_parked"]),
                published_for=_seconds(r["published_for"]),
                dispatch_taken=bool(r["dispatch_taken"]),
                job_id=r["job_id"],
                cursor=(r["updated_at"], r["task_id"]),
            )
            for r in rows
        ]


def _seconds(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
