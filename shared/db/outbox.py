"""The outbox writer: what a change emits becomes rows in the caller's transaction.

Nothing in taskrelay publishes, enqueues or pushes directly; it writes here, and the relay
publishes. A trigger on the table sends NOTIFY on commit so relays wake at once.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.tables import PARTITION_BUCKETS, outbox
from shared.domain import JobDispatch, Notification
from shared.messaging import job_routing_key, notification_routing_key


def partition_key(task_id: UUID) -> int:
    """The task's bucket: stable across processes and Python versions (crc32, not hash())."""
    return zlib.crc32(task_id.bytes) % PARTITION_BUCKETS


class OutboxWriter:
    def __init__(self, conn: AsyncConnection, headers: Mapping[str, str] | None = None) -> None:
        self._conn = conn
        self._headers = dict(headers or {})
        """Carried on every row this unit of work writes (`traceparent` of the request)."""

    async def add_notification(self, notification: Notification) -> UUID:
        return await self._add(
            notification.task_id,
            "notification",
            notification_routing_key(notification.task_id),
            notification.as_body(),
        )

    async def add_job(self, job: JobDispatch) -> UUID:
        return await self._add(job.task_id, "job", job_routing_key(job.name), job.as_body())

    async def _add(self, task_id: UUID, kind: str, routing_key: str, payload: object) -> UUID:
        message_id = uuid4()
        await self._conn.execute(
            _INSERT,
            {
                "message_id": message_id,
                "task_id": task_id,
                "partition_key": partition_key(task_id),
                "kind": kind,
                "routing_key": routing_key,
                "payload": payload,
                "headers": self._headers,
            },
        )
        return message_id


# Built once: a constant statement keeps SQLAlchemy's compiled-statement cache hot.
_INSERT = outbox.insert()
