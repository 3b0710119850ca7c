"""The outbox writer: what a change emits becomes rows in the caller's transaction.

Nothing in taskrelay publishes, enqueues or pushes directly; it writes here, and the relay
publishes. A trigger on the table sends NOTIFY on commit so relays wake at once.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid4

from shared.db.tables import PARTITION_BUCKETS
from shared.domain import JobDispatch, Notification
from shared.messaging import job_routing_key, notification_routing_key
from shared.tracing import trace_headers


def partition_key(task_id: UUID) -> int:
    """The task's bucket: stable across processes and Python versions (crc32, not hash())."""
    return zlib.crc32(task_id.bytes) % PARTITION_BUCKETS


class OutboxWriter:
    def __init__(self, conn: Any, headers: Mapping[str, str] | None = None) -> None:
        self._conn = conn
        """An asyncpg connection inside the unit of work's transaction."""
        self._headers = json.dumps(dict(trace_headers() if headers is None else headers))
        """Carried on every row this unit of work writes: by default the trace context the
        writer runs under (the request's, the job's), so the relay sends it on."""

    async def add_job(self, job: JobDispatch) -> UUID:
        return (await self.add(job))[0]

    async def add(self, *messages: Notification | JobDispatch) -> list[UUID]:
        """Write the messages as rows, in this order, in one statement; their message ids."""
        rows = [self._row(message) for message in messages]
        await self._conn.executemany(_INSERT, rows)
        return [row[0] for row in rows]

    def _row(self, message: Notification | JobDispatch) -> tuple[Any, ...]:
        if isinstance(message, Notification):
            kind, routing_key = "notification", notification_routing_key(message.task_id)
        else:
            kind, routing_key = "job", job_routing_key(message.name)
        task_id = message.task_id
        payload = json.dumps(message.as_body())
        return (uuid4(), task_id, partition_key(task_id), kind, routing_key, payload, self._headers)


_INSERT = (
    "INSERT INTO outbox (message_id, task_id, partition_key, kind, routing_key, payload, headers) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
