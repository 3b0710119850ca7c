"""Worker test helpers: wait for a task's status, read its items and its outbox rows.

Starting a worker is `harness.worker.start_worker`, a relay `harness.relay.start_relay`;
publishing an outbox row again, as the relay does, is `tests.support.republish`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from harness import sql
from harness.wait import wait_until
from harness.worker import task_row
from shared.adapters.postgres import UnitOfWorkFactory
from shared.domain import FINAL


async def wait_for_status(
    uow_factory: UnitOfWorkFactory,
    task_id: UUID,
    statuses: Collection[str] = FINAL,
    within: float = 60,
) -> Any:
    async def reached() -> Any:
        row = await task_row(uow_factory, task_id)
        return row if row.status in statuses else None

    return await wait_until(reached, within=within, interval=0.2, what=f"task in {statuses}")


async def item_counts(uow_factory: UnitOfWorkFactory, task_id: UUID) -> dict[str, int]:
    query = "SELECT status FROM content_items WHERE task_id = $1"
    statuses = [row[0] for row in await sql.fetch(uow_factory, query, task_id)]
    return {s: statuses.count(s) for s in ("pending", "completed", "failed")}


async def outbox_payloads(
    uow_factory: UnitOfWorkFactory, task_id: UUID, kind: str
) -> list[dict[str, Any]]:
    """The payloads of the task's outbox rows of one kind, in commit order."""
    query = "SELECT payload FROM outbox WHERE task_id = $1 AND kind = $2 ORDER BY id"
    return [row[0] for row in await sql.fetch(uow_factory, query, task_id, kind)]


async def notifications(uow_factory: UnitOfWorkFactory, task_id: UUID) -> list[dict[str, Any]]:
    return await outbox_payloads(uow_factory, task_id, "notification")


async def item_statuses(uow_factory: UnitOfWorkFactory, task_id: UUID) -> dict[str, str]:
    query = "SELECT concept_id, status FROM content_items WHERE task_id = $1"
    return {r["concept_id"]: r["status"] for r in await sql.fetch(uow_factory, query, task_id)}
