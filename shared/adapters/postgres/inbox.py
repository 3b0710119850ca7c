"""The `job_inbox` repository: job messages the worker already turned into RQ jobs.

A job message is deduplicated by its AMQP `message_id`: the consumer records it once the RQ job
is enqueued, and a redelivery that finds it here enqueues nothing. Entries are kept for a
retention period (a redelivery comes within minutes), then purged in small batches. Plain
prepared SQL (`shared.adapters.postgres.sql`) on the unit of work's asyncpg connection.
"""

from __future__ import annotations

from uuid import UUID

from shared.adapters.postgres.sql import Connection, affected

_SEEN = "SELECT message_id FROM job_inbox WHERE message_id = $1"
_RECORD = (
    "INSERT INTO job_inbox (message_id, task_id, job_id) VALUES ($1, $2, $3) "
    "ON CONFLICT (message_id) DO NOTHING"
)
_PURGE = (
    "DELETE FROM job_inbox WHERE message_id IN (SELECT message_id FROM job_inbox "
    "WHERE received_at < now() - make_interval(secs => $1) LIMIT $2)"
)


class InboxRepository:
    """Job messages already turned into RQ jobs, by AMQP `message_id`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def seen(self, message_id: UUID) -> bool:
        return await self._conn.fetchval(_SEEN, message_id) is not None

    async def record(self, message_id: UUID, task_id: UUID, job_id: str) -> None:
        await self._conn.execute(_RECORD, message_id, task_id, job_id)

    async def purge(self, older_than_seconds: float, limit: int = 1000) -> int:
        """Delete up to `limit` entries older than `older_than_seconds`; how many went."""
        return affected(await self._conn.execute(_PURGE, float(older_than_seconds), limit))
