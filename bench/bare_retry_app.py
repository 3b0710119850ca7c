"""The baseline of bench/api_retry.py: a bare Litestar + asyncpg retry endpoint.

It runs the same SQL as taskrelay's retry in one transaction (lock the task, reset the items
not completed and return them, update the task and write the notification and the job rows in
one statement, read the view with its item counts) with none of taskrelay's layers: no auth, no
SQLAlchemy, no state machine, no idempotency. Run: python bench/bare_retry_app.py DSN PORT
"""

from __future__ import annotations

import json
import sys
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import uvicorn
from litestar import Litestar, Response, post
from litestar.datastructures import State

LOCK = (
    "SELECT task_id, roadmap_id, owner_id, status, seq FROM roadmap_tasks "
    "WHERE task_id = $1 FOR UPDATE"
)
RESET = (  # the items not completed back to pending, and the task's counter, as ItemRepository
    "WITH reset AS (UPDATE content_items SET status = 'pending', updated_at = $2 "
    "WHERE task_id = $1 AND status != 'completed' "
    "RETURNING concept_id, content_type, position), "
    "counted AS (UPDATE roadmap_tasks SET items_failed = 0 WHERE task_id = $1) "
    "SELECT * FROM reset"
)
EMIT = (  # the task row and its two outbox rows in one statement, as OutboxWriter.emit
    "WITH saved AS (UPDATE roadmap_tasks SET status = 'processing', "
    "current_step = 'content_retry_queued', error_message = NULL, completed_at = NULL, "
    "seq = $2, updated_at = $3, last_message = $4 WHERE task_id = $1) "
    "INSERT INTO outbox (message_id, task_id, partition_key, kind, routing_key, payload, headers) "
    "VALUES ($5, $1, $6, 'notification', $7, $8::jsonb, '{}'::jsonb), "
    "($9, $1, $6, 'job', 'job.generate_content', $10::jsonb, '{}'::jsonb)"
)
OPEN_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('taskrelay.open_items:' || $1, 0))"
OPEN_ITEMS = (  # the open-items limit's two statements, as TaskRepository.open_items
    "SELECT coalesce(sum(items_total - items_completed - items_failed), 0) FROM roadmap_tasks "
    "WHERE owner_id = $1 AND status IN ('pending', 'processing')"
)
MAX_OPEN_ITEMS = 20000
VIEW = (
    "SELECT t.*, coalesce((SELECT jsonb_agg(jsonb_build_array(content_type, status, n)) "
    "FROM (SELECT content_type, status, count(*) AS n FROM content_items "
    "WHERE task_id = t.task_id GROUP BY content_type, status) AS c), '[]') AS item_counts "
    "FROM roadmap_tasks AS t WHERE t.task_id = $1"
)


@post("/retry/{task_id:uuid}", status_code=202)
async def retry(task_id: uuid.UUID, state: State) -> Response[Any]:
    pool: asyncpg.Pool = state.pool
    async with pool.acquire() as conn, conn.transaction():
        task = await conn.fetchrow(LOCK, task_id)
        if task is None:
            return Response({"detail": "not found"}, status_code=404)
        if task["status"] not in ("cancelled", "failed", "partial_failure"):
            return Response({"detail": "conflict"}, status_code=409)
        now = datetime.now(UTC)
        items = sorted(await conn.fetch(RESET, task_id, now), key=lambda r: r["position"])
        if not items:
            return Response({"detail": "nothing to retry"}, status_code=409)
        await conn.execute(OPEN_LOCK, task["owner_id"])
        if await conn.fetchval(OPEN_ITEMS, task["owner_id"]) + len(items) > MAX_OPEN_ITEMS:
            return Response({"detail": "too many unfinished items"}, status_code=429)
        seq = task["seq"] + 1
        message = f"Retrying {len(items)} failed content items"
        note = {
            "task_id": str(task_id),
            "seq": seq,
            "step": "content_retry_queued",
            "status": "processing",
            "message": message,
            "data": {"roadmap_id": task["roadmap_id"], "total_items": len(items)},
        }
        job = {
            "task_id": str(task_id),
            "job": "generate_content",
            "reason": "retry",
            "items": [{"concept_id": r[0], "content_type": r[1]} for r in items],
        }
        await conn.execute(
            EMIT,
            task_id,
            seq,
            now,
            message,
            uuid.uuid4(),
            zlib.crc32(task_id.bytes) % 256,
            f"notification.{task_id}",
            json.dumps(note),
            uuid.uuid4(),
            json.dumps(job),
        )
        view = dict(await conn.fetchrow(VIEW, task_id))
    return Response({"task": view, "total_items": len(items)}, status_code=202)


def create_app(dsn: str) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # No reset round trip at release, as taskrelay's pool (shared.adapters.postgres.uow): each
        # request ends its transaction and leaves nothing else on the session.
        app.state.pool = await asyncpg.create_pool(
            dsn, min_size=10, max_size=20, reset=_nothing_to_reset
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    return Litestar([retry], lifespan=[lifespan], logging_config=None)


async def _nothing_to_reset(_conn: asyncpg.Connection) -> None:
    pass


if __name__ == "__main__":
    uvicorn.run(
        create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning"
    )
