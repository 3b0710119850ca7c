"""The `user_turns` repository, and whose turn is next: the scheduler's view of the tasks that
wait for a worker.

A task waits from the moment a job dispatch is written for it (`roadmap_tasks.waiting_since`,
set by the outbox writer in the same statement) until a job takes it (`take`). Capacity is
shared round-robin over users, not tasks (protocol §8b): the next turn belongs to the waiting
user whose last turn (`user_turns`) is the oldest, a user who never had one first. A job whose
task is not that user's gives its turn away (`TaskRepository.defer`, with a new dispatch
through the outbox); every worker of the deployment reads the same rows, so the choice holds
across machines. Why this design and not per-user RQ queues: docs/worker.md.

`take` writes two tables in one statement, on purpose (one round trip per job start): the
user's turn here, and the task's row (`waiting_since` and `deferrals` cleared), which
`shared.adapters.postgres.tasks` names. Plain prepared SQL (`shared.adapters.postgres.sql`).
"""

from __future__ import annotations

from uuid import UUID

from shared.adapters.postgres.sql import Connection
from shared.domain.records import Standing

_IN_LINE = (
    "w.waiting_since IS NOT NULL AND w.status IN ('pending', 'processing') "
    "AND EXISTS (SELECT FROM job_inbox AS j WHERE j.task_id = w.task_id "
    "AND j.received_at >= w.waiting_since)"
)
"""A waiting task whose dispatch a worker has taken since it began to wait: its RQ job is in
line. (One whose dispatch is still on its way will be in line in a moment; one whose message
never reached a worker holds nobody off; the reconciler gives it a new dispatch.)"""
_STANDING = (
    "SELECT t.waiting_since IS NOT NULL AS waiting, t.deferrals, "
    "(SELECT w.owner_id FROM roadmap_tasks AS w LEFT JOIN user_turns AS u "
    f"ON u.owner_id = w.owner_id WHERE {_IN_LINE} "
    "ORDER BY u.last_turn_at NULLS FIRST, w.waiting_since LIMIT 1) AS next_owner "
    "FROM roadmap_tasks AS t WHERE t.task_id = $1"
)
_TAKE = (
    "WITH taken AS (UPDATE roadmap_tasks AS t SET waiting_since = NULL, deferrals = 0 "
    "FROM (SELECT waiting_since FROM roadmap_tasks WHERE task_id = $1) AS before "
    "WHERE t.task_id = $1 RETURNING before.waiting_since), "
    "turn AS (INSERT INTO user_turns (owner_id, last_turn_at) VALUES ($2, now()) "
    "ON CONFLICT (owner_id) DO UPDATE SET last_turn_at = EXCLUDED.last_turn_at) "
    "SELECT extract(epoch FROM now() - waiting_since)::float8 FROM taken"
)
_OTHERS_WAITING = (
    f"SELECT EXISTS (SELECT FROM roadmap_tasks AS w WHERE {_IN_LINE} AND w.task_id <> $1)"
)


class TurnRepository:
    """The waiting tasks and the users' turns, for the job that decides whether to run."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def standing(self, task_id: UUID) -> Standing | None:
        row = await self._conn.fetchrow(_STANDING, task_id)
        if row is None:
            return None
        return Standing(row["waiting"], row["deferrals"], row["next_owner"])

    async def take(self, task_id: UUID, owner_id: str) -> float | None:
        """The task is no longer waiting and its user's turn is now; the seconds it waited
        (None if it was not waiting)."""
        waited = await self._conn.fetchval(_TAKE, task_id, owner_id)
        return None if waited is None else float(waited)

    async def others_waiting(self, task_id: UUID) -> bool:
        """Does any other task wait in line for a worker?"""
        return bool(await self._conn.fetchval(_OTHERS_WAITING, task_id))
