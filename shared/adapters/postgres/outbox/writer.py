"""The outbox writer: what a change emits becomes rows in the caller's transaction.

Nothing in taskrelay publishes, enqueues or pushes directly; it writes here, and the relay
publishes (`delivery.py`). A trigger on the table sends NOTIFY on commit so relays wake at once.

`emit` writes a task's change itself too: the task row (status, step, `seq`, `last_message`)
and the outbox rows of its notification and job dispatch go in ONE statement, so the `seq` a
notification carries and the row that carries it are never apart, in one round trip. It is the
one place a task's status is written (`shared.adapters.postgres.tasks` says so); a job
dispatch's `add` likewise marks its task waiting (`waiting_since`) in the statement that writes
its row. Plain prepared SQL (`shared.adapters.postgres.sql`) on the unit of work's connection.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID, uuid4

import msgspec

from shared.adapters.postgres.sql import Connection
from shared.domain import JobDispatch, Notification, TaskState
from shared.domain.messages import job_routing_key, notification_routing_key
from shared.observability.tracing import trace_headers

OUTBOX_CHANNEL = "taskrelay_outbox"
"""The NOTIFY channel a trigger on `outbox` signals in every writing transaction (migration
0001); the relays LISTEN to it."""
PARTITION_BUCKETS = 256
"""Outbox rows carry `partition_key = crc32(task_id) % PARTITION_BUCKETS` (see docs/relay.md)."""

_HEADERS = msgspec.json.Encoder()
"""Headers are text to text: msgspec writes the same JSON value as json.dumps, in a fifth of
the time, once per unit of work."""


def partition_key(task_id: UUID) -> int:
    """The task's bucket: stable across processes and Python versions (crc32, not hash())."""
    return zlib.crc32(task_id.bytes) % PARTITION_BUCKETS


class OutboxWriter:
    def __init__(self, conn: Connection, headers: Mapping[str, str] | None = None) -> None:
        self._conn = conn
        """An asyncpg connection inside the unit of work's transaction."""
        carried = trace_headers() if headers is None else dict(headers)
        self._headers = _HEADERS.encode(carried).decode()
        """Carried on every row this unit of work writes: by default the trace context the
        writer runs under (the request's, the job's), so the relay sends it on."""

    async def add_job(self, job: JobDispatch) -> UUID:
        return (await self.add(job))[0]

    async def add(self, *messages: Notification | JobDispatch) -> list[UUID]:
        """Write the messages as rows, in this order, in one statement; their message ids. A
        job dispatch's task waits for a worker from now on (`waiting_since`, if not already)."""
        rows = [self._row(message) for message in messages]
        waiting = sorted({m.task_id for m in messages if isinstance(m, JobDispatch)})
        values = (v for row in rows for v in row)
        if waiting:
            await self._conn.execute(_insert_waiting(len(rows)), waiting, *values)
        else:
            await self._conn.execute(_insert(len(rows)), *values)
        return [row[0] for row in rows]

    async def emit(
        self, state: TaskState, now: datetime, notification: Notification, *jobs: JobDispatch
    ) -> None:
        """Save the task's new `state` (its `last_message` is the notification's message) and
        write the notification, then the job dispatches, as outbox rows: one statement. A job
        dispatch makes the task wait for a worker; a finished task waits for nothing."""
        saved = (
            state.task_id,
            state.status.value,
            state.current_step,
            state.error_message,
            state.completed_at,
            state.seq,
            now,
            notification.message,
            bool(jobs),
        )
        messages: list[Notification | JobDispatch] = [notification, *jobs]
        rows = [self._row(message) for message in messages]
        await self._conn.execute(_emit(len(rows)), *saved, *(v for row in rows for v in row))

    def _row(self, message: Notification | JobDispatch) -> tuple[Any, ...]:
        if isinstance(message, Notification):
            kind, routing_key = "notification", notification_routing_key(message.task_id)
        else:
            kind, routing_key = "job", job_routing_key(message.name)
        task_id = message.task_id
        payload = json.dumps(message.as_body())
        return (uuid4(), task_id, partition_key(task_id), kind, routing_key, payload, self._headers)


_COLUMNS = "message_id, task_id, partition_key, kind, routing_key, payload, headers"
_SAVE = (
    "UPDATE roadmap_tasks SET status = $2, current_step = $3, error_message = $4, "
    "completed_at = $5, seq = $6, updated_at = $7, last_message = $8, "
    "waiting_since = CASE WHEN $2 NOT IN ('pending', 'processing') THEN NULL "
    "WHEN $9::boolean THEN coalesce(waiting_since, now()) ELSE waiting_since END "
    "WHERE task_id = $1"
)
_WAIT = (
    "UPDATE roadmap_tasks SET waiting_since = coalesce(waiting_since, now()) "
    "WHERE task_id = ANY($1::uuid[]) AND status IN ('pending', 'processing')"
)


def _values(rows: int, first: int) -> str:
    """`rows` rows of outbox values, numbered from `$first`; inserted (and given ids) in order."""
    width = len(_COLUMNS.split(", "))
    return ", ".join(
        "(" + ", ".join(f"${first + r * width + c}" for c in range(width)) + ")"
        for r in range(rows)
    )


@cache
def _insert(rows: int) -> str:
    return _insert_from(rows, 1)


@cache
def _insert_waiting(rows: int) -> str:
    return f"WITH waiting AS ({_WAIT}) {_insert_from(rows, 2)}"


def _insert_from(rows: int, first: int) -> str:
    return f"INSERT INTO outbox ({_COLUMNS}) VALUES {_values(rows, first)}"


@cache
def _emit(rows: int) -> str:
    return f"WITH saved AS ({_SAVE}) {_insert_from(rows, 10)}"
